package keyring

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCreateKeysModesAndReread(t *testing.T) {
	dir := t.TempDir()
	d, err := CreateKeys(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{IdentityFile, SecretFile} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: mode %v, %v", f, st.Mode().Perm(), err)
		}
	}
	d2, err := ReadKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !d2.Identity.Public().Equal(d.Identity.Public()) || !d2.Secrets.ChunkerKey().Equal(d.Secrets.ChunkerKey()) {
		t.Fatal("reread keys differ")
	}
	if d.Secrets.ChunkerKey().Equal(d.Secrets.ConvergenceKey()) {
		t.Fatal("chunker and convergence keys are the same")
	}
}

func TestCreateKeysRefusesOverwrite(t *testing.T) {
	dir := t.TempDir()
	d, err := CreateKeys(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := CreateKeys(dir, false); !errors.Is(err, ErrExists) {
		t.Fatalf("second create: %v", err)
	}
	d2, err := CreateKeys(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	if d2.Secrets.ConvergenceKey().Equal(d.Secrets.ConvergenceKey()) {
		t.Fatal("force kept the old secret")
	}
}

func TestReadKeysErrors(t *testing.T) {
	if _, err := ReadKeys(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, ErrNotInit) {
		t.Fatalf("missing dir: %v", err)
	}
	if _, err := ReadKeys(t.TempDir()); !errors.Is(err, ErrNotInit) {
		t.Fatalf("empty dir: %v", err)
	}
	dir := t.TempDir()
	if _, err := CreateKeys(dir, false); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Join(dir, SecretFile), 0o644)
	_, err := ReadKeys(dir)
	if !errors.Is(err, ErrPermissions) || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable secret: %v", err)
	}
	os.Chmod(filepath.Join(dir, SecretFile), 0o600)
	os.WriteFile(filepath.Join(dir, SecretFile), []byte("garbage"), 0o600)
	if _, err := ReadKeys(dir); err == nil {
		t.Fatal("garbage secret accepted")
	}
}
