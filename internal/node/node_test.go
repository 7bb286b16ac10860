package node

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/umbra-store/umbra/keyring"
)

func TestInitModesAndOpen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "node")
	keys, err := Init(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(dir); st.Mode().Perm() != 0o700 {
		t.Fatalf("node dir mode %o", st.Mode().Perm())
	}
	n, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if !n.Keys.Identity.Public().Equal(keys.Identity.Public()) || n.Path != dir {
		t.Fatal("opened another node")
	}
	if _, err := Open(filepath.Join(t.TempDir(), "missing"), nil); !errors.Is(err, keyring.ErrNotInit) {
		t.Fatalf("missing: %v", err)
	}
}

// TestNodeDirectoryModeChecked is finding 8d of the hardening review: a
// node directory made group- or world-accessible after init was opened
// without a word. It is refused, saying how to fix it.
func TestNodeDirectoryModeChecked(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "node")
	if _, err := Init(dir, false); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []os.FileMode{0o750, 0o705, 0o755} {
		os.Chmod(dir, mode)
		_, err := Open(dir, nil)
		if !errors.Is(err, ErrPermissions) || !strings.Contains(err.Error(), "chmod 700 "+dir) {
			t.Fatalf("mode %o: %v", mode, err)
		}
	}
	os.Chmod(dir, 0o700)
	n, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	n.Close()
}
