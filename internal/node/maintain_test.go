package node

import (
	"os"
	"path/filepath"
	"testing"
)

func TestMaintained(t *testing.T) {
	dir := t.TempDir()
	m := OpenMaintained(dir)
	for _, c := range []string{"umbra:fv:b", "umbra:fv:a", "umbra:fv:b"} {
		if err := m.Add(c, "put"); err != nil {
			t.Fatal(err)
		}
	}
	rs, err := m.List()
	if err != nil || len(rs) != 2 || rs[0].Cap != "umbra:fv:a" || rs[1].Origin != "put" {
		t.Fatalf("list: %+v %v", rs, err)
	}
	if ok, err := m.Remove("umbra:fv:a"); !ok || err != nil {
		t.Fatalf("remove: %v %v", ok, err)
	}
	if ok, _ := m.Remove("umbra:fv:a"); ok {
		t.Fatal("removed twice")
	}
	if fi, err := os.Stat(filepath.Join(dir, MaintainFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("file: %v %v", fi, err)
	}
	if rs, _ := OpenMaintained(dir).List(); len(rs) != 1 || rs[0].Cap != "umbra:fv:b" {
		t.Fatalf("read afresh: %+v", rs)
	}
}
