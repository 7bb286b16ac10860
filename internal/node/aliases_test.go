package node

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/umbra-store/umbra/internal/kind"
)

func TestAliases(t *testing.T) {
	dir := t.TempDir()
	a := OpenAliases(dir)
	if _, ok, err := a.Lookup("x"); ok || err != nil {
		t.Fatalf("lookup in no file: %v %v", ok, err)
	}
	if err := a.Set("home", "umbra:dw:one", false); err != nil {
		t.Fatal(err)
	}
	if err := a.Set("home", "umbra:dw:two", false); kind.Of(err) != kind.Exists {
		t.Fatalf("replaced without asking: %v", err)
	}
	st, err := os.Stat(filepath.Join(dir, AliasesFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("alias file mode: %v %v", st.Mode(), err)
	}
	// Another handle (the daemon's) sees the change at once.
	if c, ok, _ := OpenAliases(dir).Lookup("home"); !ok || c != "umbra:dw:one" {
		t.Fatal("change not seen by another reader")
	}
	a.Set("b", "umbra:dr:x", false)
	if l, _ := a.List(); len(l) != 2 || l[0].Name != "b" || l[1].Name != "home" {
		t.Fatalf("list: %v", l)
	}
	if err := a.Remove("home"); err != nil {
		t.Fatal(err)
	}
	if err := a.Remove("home"); !errors.Is(err, ErrNoAlias) {
		t.Fatalf("remove twice: %v", err)
	}
	os.WriteFile(filepath.Join(dir, AliasesFile), []byte("{"), 0o600)
	if _, _, err := a.Lookup("b"); err == nil {
		t.Fatal("a damaged alias file read without error")
	}
}
