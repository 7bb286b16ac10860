package kind

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"testing"
)

func TestOf(t *testing.T) {
	errNF := New(NotFound, "x: not found")
	for name, c := range map[string]struct {
		err  error
		want Kind
	}{
		"nil":           {nil, Other},
		"plain":         {errors.New("boom"), Other},
		"sentinel":      {errNF, NotFound},
		"wrapped":       {fmt.Errorf("reading: %w", errNF), NotFound},
		"marked":        {Mark(fs.ErrPermission, IO), IO},
		"marked inside": {fmt.Errorf("a: %w", Mark(errors.New("b"), Busy)), Busy},
		"outer wins":    {Mark(fmt.Errorf("c: %w", errNF), Corrupt), Corrupt},
		"cancelled":     {fmt.Errorf("put: %w", context.Canceled), Interrupted},
	} {
		if got := Of(c.err); got != c.want {
			t.Errorf("%s: %v, want %v", name, got, c.want)
		}
	}
	if !errors.Is(Mark(fs.ErrNotExist, IO), fs.ErrNotExist) {
		t.Fatal("Mark hides the error it marks")
	}
	if Mark(nil, IO) != nil {
		t.Fatal("Mark(nil) is not nil")
	}
}

// TestTable pins the mapping the API and the CLI share (README "Exit
// codes", docs/protocol.md "HTTP API").
func TestTable(t *testing.T) {
	want := map[Kind][3]any{
		Other: {"error", 500, 1}, Usage: {"usage", 400, 2}, NotFound: {"not_found", 404, 3},
		Corrupt: {"corrupt", 422, 4}, FewPeers: {"few_peers", 409, 1}, Full: {"full", 507, 1},
		Busy: {"busy", 503, 1}, IO: {"io", 500, 1}, Interrupted: {"interrupted", 499, 130},
		BrokenPipe: {"broken_pipe", 499, 141}, Exists: {"exists", 409, 1}, Conflict: {"conflict", 412, 1},
		NotDir: {"not_folder", 400, 2}, IsDir: {"is_folder", 400, 2}, ReadOnly: {"read_only", 403, 2},
	}
	for k, w := range want {
		if got := [3]any{k.String(), k.HTTPStatus(), k.ExitCode()}; got != w {
			t.Errorf("%d: %v, want %v", k, got, w)
		}
		if Parse(k.String()) != k {
			t.Errorf("Parse(%q) != %d", k.String(), k)
		}
	}
	if len(want) != len(table) {
		t.Fatalf("%d kinds tested, %d in the table", len(want), len(table))
	}
	if Parse("nonsense") != Other || Kind(99).ExitCode() != 1 {
		t.Fatal("unknown kinds are not Other")
	}
}
