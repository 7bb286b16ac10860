package dirs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/umbra-store/umbra/dht"
	"github.com/umbra-store/umbra/internal/engine"
	"github.com/umbra-store/umbra/internal/format"
	"github.com/umbra-store/umbra/keyring"
)

// resolveHook runs hook (once) before the n-th Resolve it passes on.
type resolveHook struct {
	Records
	n    int
	hook func()
}

func (r *resolveHook) Resolve(ctx context.Context, id [32]byte) ([]*format.Record, error) {
	r.n--
	if r.n == 0 && r.hook != nil {
		h := r.hook
		r.hook = nil
		h()
	}
	return r.Records.Resolve(ctx, id)
}

// racer returns a service over o's folders whose n-th Resolve first runs
// steps, another writer's, and the hook (nil once it ran).
func racer(o *offline, n int, steps func(other *Service)) (*Service, *resolveHook) {
	other := New(o.svc.eng, o.svc.recs, o.aliases, Options{})
	hooked := &resolveHook{Records: o.svc.recs, n: n, hook: func() { steps(other) }}
	return New(o.svc.eng, hooked, o.aliases, Options{}), hooked
}

// otherPut is another writer's put of data at path.
func otherPut(t *testing.T, other *Service, data, path string) {
	if _, err := other.PutFile(context.Background(), strings.NewReader(data), path, "", FileMeta{}, engine.PutOptions{}); err != nil {
		t.Errorf("the other writer's put: %v", err)
	}
}

// TestMoveTakesRacingPut: another writer puts a new a between mv a b's
// look and its change: the move takes the entry there when it is made, b
// holds the new bytes. Before, it set the entry it had looked at: the new
// bytes were nowhere.
func TestMoveTakesRacingPut(t *testing.T) {
	o := newOffline(t)
	ctx := context.Background()
	o.newFolder(t, "h")
	o.put(t, []byte("v1"), "h:a")
	// Move resolves h to find a (1), h to find b (2), then h to change it
	// (3): the other writer's put lands just before the change.
	s, hooked := racer(o, 3, func(other *Service) {
		otherPut(t, other, "v2", "h:a")
	})
	err := s.Move(ctx, "h:a", "h:b")
	if hooked.hook != nil {
		t.Fatal("the other writer did not run")
	}
	if err != nil {
		t.Fatal(err)
	}
	if got := string(o.read(t, "h:b")); got != "v2" || names(t, o, "h:") != "b" {
		t.Fatalf("mv after a racing put: h:b holds %q, h: holds %q: the put's v2 is lost", got, names(t, o, "h:"))
	}
}

// TestMoveAcrossKeepsRacingPut: the same across two folders: the entry
// is added to the destination as it was; the source, changed meanwhile,
// keeps its new version and the move fails (ErrConflict). Before, the
// source's name was removed whatever it held by then.
func TestMoveAcrossKeepsRacingPut(t *testing.T) {
	o := newOffline(t)
	ctx := context.Background()
	o.newFolder(t, "h")
	if _, err := o.svc.Mkdir(ctx, "h:d", false); err != nil {
		t.Fatal(err)
	}
	o.put(t, []byte("v1"), "h:a")
	// Move resolves h (to find a), h (to find d), then d (set), then h
	// (remove): the other writer's put lands before the removal.
	s, hooked := racer(o, 4, func(other *Service) {
		otherPut(t, other, "v2", "h:a")
	})
	err := s.Move(ctx, "h:a", "h:d")
	if hooked.hook != nil {
		t.Fatal("the other writer did not run")
	}
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("mv across folders after a racing put: %v, want ErrConflict", err)
	}
	h, d := string(o.read(t, "h:a")), string(o.read(t, "h:d/a"))
	if h != "v2" || d != "v1" {
		t.Fatalf("mv across folders after a racing put: h: holds %q, h:d/a holds %q: the put's v2 is lost", h, d)
	}
}

// TestPutTreeKeepsRacingFolder: put -r into an existing folder decides,
// when it looks, which of its folders are new; another writer makes a
// folder of the same name meanwhile. The put fails (ErrExists: run again
// to merge into it) and their folder stays. Before, it was replaced by the
// new one, with everything in it.
func TestPutTreeKeepsRacingFolder(t *testing.T) {
	o := newOffline(t)
	ctx := context.Background()
	o.newFolder(t, "h")
	src := t.TempDir()
	if err := os.MkdirAll(filepath.Join(src, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "sub", "mine"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	other := New(o.svc.eng, o.svc.recs, o.aliases, Options{})
	hooked := &publishHook{Records: o.svc.recs}
	hooked.hook = func() { // after put -r published its new folder sub
		if _, err := other.Mkdir(ctx, "h:sub", false); err != nil {
			t.Errorf("the other writer's mkdir: %v", err)
		}
		otherPut(t, other, "theirs", "h:sub/theirs")
	}
	s := New(o.svc.eng, hooked, o.aliases, Options{})
	root, err := os.OpenRoot(src)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	_, err = s.PutTree(ctx, root, "h:", engine.PutOptions{}, nil)
	if hooked.hook != nil {
		t.Fatal("the other writer did not run")
	}
	if !errors.Is(err, ErrExists) {
		t.Fatalf("put -r against a racing mkdir: %v, want ErrExists", err)
	}
	if got := names(t, o, "h:sub"); !strings.Contains(got, "theirs") {
		t.Fatalf("put -r replaced a folder another writer made meanwhile: h:sub holds %q", got)
	}
}

// TestRemoveWithoutRecursiveKeepsRacingFolder: another writer replaces
// the file rm (without -r) looked at by a folder, with a file in it,
// before rm's change: rm fails (ErrIsDir) and the folder stays. Before,
// it removed the folder and its file.
func TestRemoveWithoutRecursiveKeepsRacingFolder(t *testing.T) {
	o := newOffline(t)
	ctx := context.Background()
	o.newFolder(t, "h")
	o.put(t, []byte("file"), "h:f")
	// Remove resolves h to look at f (1), then h to change it (2).
	s, hooked := racer(o, 2, func(other *Service) {
		if err := other.Remove(ctx, "h:f", false); err != nil {
			t.Errorf("the other writer's rm: %v", err)
		}
		if _, err := other.Mkdir(ctx, "h:f", false); err != nil {
			t.Errorf("the other writer's mkdir: %v", err)
		}
		otherPut(t, other, "theirs", "h:f/theirs")
	})
	err := s.Remove(ctx, "h:f", false)
	if hooked.hook != nil {
		t.Fatal("the other writer did not run")
	}
	if !errors.Is(err, ErrIsDir) || names(t, o, "h:f") != "theirs" {
		t.Fatalf("rm without -r of a file another writer made a folder meanwhile: %v; h: holds %q", err, names(t, o, "h:"))
	}
}

// TestMoveNotDoneWhenSourceGone: another writer removes a and puts an
// unrelated b between mv a b's look and its change: the move fails
// (ErrNotFound). Before, its "done by an earlier try" test took their b
// for its own and reported success.
func TestMoveNotDoneWhenSourceGone(t *testing.T) {
	o := newOffline(t)
	ctx := context.Background()
	o.newFolder(t, "h")
	o.put(t, []byte("mine"), "h:a")
	s, hooked := racer(o, 3, func(other *Service) {
		if err := other.Remove(ctx, "h:a", false); err != nil {
			t.Errorf("the other writer's rm: %v", err)
		}
		otherPut(t, other, "theirs", "h:b")
	})
	err := s.Move(ctx, "h:a", "h:b")
	if hooked.hook != nil {
		t.Fatal("the other writer did not run")
	}
	if !errors.Is(err, ErrNotFound) || string(o.read(t, "h:b")) != "theirs" {
		t.Fatalf("mv a b with a gone and their b there: %v; h:b holds %q", err, o.read(t, "h:b"))
	}
}

// TestPutFileInlineBudget: docs/format.md: "Past 48 MiB of inline data in
// one folder, further small files are stored as files". A small file put
// into a folder holding nearly 64 MiB of inline files is stored as a file
// of its own. Before, it was inlined all the same, the snapshot passed
// format.MaxSnapshot and the folder took no more small files.
func TestPutFileInlineBudget(t *testing.T) {
	o := newOffline(t)
	ctx := context.Background()
	o.newFolder(t, "h")
	data := make([]byte, format.MaxInline)
	const entry = 1 + 6 + 1 + 2 + 8 + 2 + format.MaxInline // name of 6 bytes
	n := (format.MaxSnapshot - 70 - 200) / entry
	ops := make([]Op, 0, n)
	for i := range n {
		ops = append(ops, Op{Kind: "set", Name: fmt.Sprintf("f%05d", i), Data: data, Mode: 0o644, MTime: 1})
	}
	if _, err := o.svc.Apply(ctx, "h:", ops); err != nil {
		t.Fatal(err)
	}
	e, err := o.svc.PutFile(ctx, bytes.NewReader(data), "h:one-more", "", FileMeta{}, engine.PutOptions{})
	if err != nil || e.Inline {
		t.Fatalf("a small file into a folder past its inline budget: %+v %v", e, err)
	}
	if !bytes.Equal(o.read(t, "h:one-more"), data) {
		t.Fatal("the file read back differs")
	}
}

// TestPutTreeFileDoesNotReplaceFolder: put -r of a tree with a file x
// into a folder holding a folder x fails (ErrExists), as a put of the file
// does, and the folder stays. Before, it was replaced with everything
// under it.
func TestPutTreeFileDoesNotReplaceFolder(t *testing.T) {
	o := newOffline(t)
	ctx := context.Background()
	o.newFolder(t, "h")
	if _, err := o.svc.Mkdir(ctx, "h:x", false); err != nil {
		t.Fatal(err)
	}
	o.put(t, []byte("keep me"), "h:x/precious")
	if _, err := o.svc.PutFile(ctx, strings.NewReader("file"), "h:x", "", FileMeta{}, engine.PutOptions{}); err == nil && names(t, o, "h:") != "x/" {
		t.Fatal("put replaced a folder")
	}
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "x"), []byte("a file"), 0o644); err != nil {
		t.Fatal(err)
	}
	root, err := os.OpenRoot(src)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	_, err = o.svc.PutTree(ctx, root, "h:", engine.PutOptions{}, nil)
	if got := names(t, o, "h:x"); !errors.Is(err, ErrExists) || got != "precious" {
		t.Fatalf("put -r of a file x over the folder x: %v; h:x holds %q", err, got)
	}
}

// TestPutTreeInlineBudget: put -r of small files into a folder whose
// inline files are near the budget stores them as files of their own.
// Before, they were inlined and the snapshot passed format.MaxSnapshot.
func TestPutTreeInlineBudget(t *testing.T) {
	o := newOffline(t)
	ctx := context.Background()
	o.newFolder(t, "h")
	data := make([]byte, format.MaxInline)
	const entry = 1 + 6 + 1 + 2 + 8 + 2 + format.MaxInline // name of 6 bytes
	n := (format.MaxSnapshot - 70 - 200) / entry
	ops := make([]Op, 0, n)
	for i := range n {
		ops = append(ops, Op{Kind: "set", Name: fmt.Sprintf("f%05d", i), Data: data, Mode: 0o644, MTime: 1})
	}
	if _, err := o.svc.Apply(ctx, "h:", ops); err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	for _, name := range []string{"s1", "s2", "s3"} {
		if err := os.WriteFile(filepath.Join(src, name), []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	root, err := os.OpenRoot(src)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	if _, err := o.svc.PutTree(ctx, root, "h:", engine.PutOptions{}, nil); err != nil {
		t.Fatalf("put -r of small files into a folder past its inline budget: %v", err)
	}
	es, err := o.svc.List(ctx, "h:")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if e.Name[0] == 's' && (e.Inline || string(o.read(t, "h:"+e.Name)) != e.Name) {
			t.Fatalf("%s after the put: %+v", e.Name, e)
		}
	}
}

// replaying is a holder set plus holders that answer with old, genuine
// records of the folder (a replay, or holders away since).
type replaying struct {
	Records
	old []*format.Record
}

func (r replaying) Resolve(ctx context.Context, id [32]byte) ([]*format.Record, error) {
	recs, err := r.Records.Resolve(ctx, id)
	if err != nil {
		return recs, err
	}
	for _, o := range r.old {
		if o.ID() == id && !slices.ContainsFunc(recs, o.Equal) {
			recs = append(recs, o)
		}
	}
	return recs, nil
}

// TestReplayedMergedBranchUndoesNothing: two writers apart publish a seq
// each; once healed, the next write merges both (its snapshot names one
// parent, the other branch stays off the line). The names both branches
// added are then removed. Holders that answer with the two old records
// (one of them the branch merged) do not make the next writer merge the
// branch again: the removed name stays removed. Before, it came back.
func TestReplayedMergedBranchUndoesNothing(t *testing.T) {
	o := newOffline(t)
	ctx := context.Background()
	c := o.newFolder(t, "f")
	o.put(t, []byte("base"), "f:base")
	a, b, other, healed := partition(t, o, c)
	w, _ := keyring.ParseCap(c)
	id := w.(keyring.DirWriteCap).ID()
	put := func(s *Service, name string) {
		t.Helper()
		if _, err := s.PutFile(ctx, strings.NewReader(name), "f:"+name, "", FileMeta{}, engine.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	put(a, "secretA")
	put(b, "secretB")
	recA, _ := o.keeper.Get(ctx, id)
	recB, _ := other.Get(ctx, id)
	if recA.Seq() != recB.Seq() || recA.Equal(recB) {
		t.Fatalf("two branches at one seq: %d and %d", recA.Seq(), recB.Seq())
	}
	*healed = true
	put(a, "later") // merges both
	if got := names(t, o, "f:"); got != "base later secretA secretB" {
		t.Fatalf("after the merge: %q", got)
	}
	// Whichever branch the merge took in (the other is its parent), a
	// name it added is removed now.
	for _, n := range []string{"f:secretA", "f:secretB"} {
		if err := a.Remove(ctx, n, false); err != nil {
			t.Fatal(err)
		}
	}
	r := New(o.svc.eng, replaying{Records: twoSides{keepers: [2]*dht.Keeper{o.keeper, other}, healed: healed}, old: []*format.Record{recA, recB}}, o.aliases, Options{})
	put(r, "z")
	if got := names(t, o, "f:"); got != "base later z" {
		t.Fatalf("a replayed branch, merged before, undid a removal: f: holds %q", got)
	}
}

// TestPartitionRemoveAgainstRenameRoundTrip: writers apart; one renames
// x to y and back (its line passes through a version without x, then
// holds x as the base had it), the other removes x. The line did not
// change x overall, so the merge keeps the removal: a version without x is
// no sign that the line saw the other side's removal.
func TestPartitionRemoveAgainstRenameRoundTrip(t *testing.T) {
	o := newOffline(t)
	ctx := context.Background()
	c := o.newFolder(t, "f")
	o.put(t, []byte("xx"), "f:x")
	a, b, _, healed := partition(t, o, c)
	if err := a.Move(ctx, "f:x", "f:y"); err != nil {
		t.Fatal(err)
	}
	if err := a.Move(ctx, "f:y", "f:x"); err != nil {
		t.Fatal(err)
	}
	if err := b.Remove(ctx, "f:x", false); err != nil {
		t.Fatal(err)
	}
	*healed = true
	if _, err := a.PutFile(ctx, strings.NewReader("later"), "f:later", "", FileMeta{}, engine.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := names(t, o, "f:"); got != "later" {
		t.Fatalf("after healing: %q, want %q (the other side's rm x lost)", got, "later")
	}
}

// TestApplyRmdirInOrder: Apply makes its ops in order: an rmdir op finds
// the folder an earlier op of the same Apply put at its name (made by
// mkdir, linked by set, or moved there by a rename's set) empty, and
// removes it. (Before, emptiness was judged by the names the folder held
// before the ops: the folder stayed.)
func TestApplyRmdirInOrder(t *testing.T) {
	for _, tc := range []struct {
		name string
		ops  func(t *testing.T, o *offline) []Op
	}{
		{"mkdir", func(*testing.T, *offline) []Op {
			return []Op{{Kind: "mkdir", Name: "d", Mode: 0o755}, {Kind: "rmdir", Name: "d"}}
		}},
		{"set", func(t *testing.T, o *offline) []Op {
			empty := keyring.GenerateDirWriteCap()
			if err := o.svc.create(context.Background(), empty); err != nil {
				t.Fatal(err)
			}
			return []Op{{Kind: "set", Name: "d", Ref: empty.Encode(), Mode: 0o755}, {Kind: "rmdir", Name: "d"}}
		}},
		{"rename", func(t *testing.T, o *offline) []Op {
			made, err := o.svc.Apply(context.Background(), "h:", []Op{{Kind: "mkdir", Name: "a", Mode: 0o755}})
			if err != nil || made["a"] == "" || names(t, o, "h:") != "a/" {
				t.Fatalf("mkdir a: %v %v", made, err)
			}
			return []Op{{Kind: "set", Name: "b", Ref: made["a"], Mode: 0o755}, {Kind: "remove", Name: "a"}, {Kind: "rmdir", Name: "b"}}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := newOffline(t)
			o.newFolder(t, "h")
			ops := tc.ops(t, o)
			if _, err := o.svc.Apply(context.Background(), "h:", ops); err != nil {
				t.Fatal(err)
			}
			if got := names(t, o, "h:"); got != "" {
				t.Fatalf("after %+v in one Apply: h: holds %q, want nothing", ops, got)
			}
		})
	}
}
