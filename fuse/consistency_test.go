package fuse

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// published reads name from folder c as the store holds it.
func published(t *testing.T, l *local, c, name string) (string, error) {
	t.Helper()
	f, err := l.dirs.OpenFile(context.Background(), c+"/"+name)
	if err != nil {
		return "", err
	}
	if f.Cap == nil {
		return string(f.Inline), nil
	}
	var b []byte
	w := &sliceWriter{&b}
	err = l.eng.Get(context.Background(), *f.Cap, w)
	return string(b), err
}

type sliceWriter struct{ b *[]byte }

func (w *sliceWriter) Write(p []byte) (int, error) { *w.b = append(*w.b, p...); return len(p), nil }

// fsyncDir publishes a folder of the mount.
func fsyncDir(t *testing.T, dir string) {
	t.Helper()
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
}

// TestRenamedFileKeepsItsName is finding 1 of the mount's review: a file
// published, renamed, then written on is published under its new name,
// and the old name does not come back.
func TestRenamedFileKeepsItsName(t *testing.T) {
	needFUSE(t)
	l := newLocal(t)
	c, dir, mt := mountNew(t, l)
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	if err := os.WriteFile(a, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	fsyncDir(t, dir)
	if err := os.Rename(a, b); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(b, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("+new"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := mt.Unmount(); err != nil {
		t.Fatal(err)
	}
	if got, err := published(t, l, c, "b"); err != nil || got != "old+new" {
		t.Fatalf("b is %q (%v)", got, err)
	}
	if _, err := published(t, l, c, "a"); err == nil {
		t.Fatal("the old name came back")
	}
}

// TestWriteAfterPublishWhileOpen is finding 2: a file published while
// still open and written on again is a change again: its new size shows
// by path, and the new bytes are published.
func TestWriteAfterPublishWhileOpen(t *testing.T) {
	needFUSE(t)
	l := newLocal(t)
	c, dir, mt := mountNew(t, l)
	p := filepath.Join(dir, "f")
	f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.WriteString("1")
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	f.WriteString("2")
	if st, err := os.Stat(p); err != nil || st.Size() != 2 {
		t.Fatalf("by path after the second write: %v %v", st, err)
	}
	f.Close()
	if err := mt.Unmount(); err != nil {
		t.Fatal(err)
	}
	if got, err := published(t, l, c, "f"); err != nil || got != "12" {
		t.Fatalf("published %q (%v)", got, err)
	}
}

// TestSplitterRefusesExtraBytes is finding 7: a ranged read answering more
// bytes than its group is an error for the group, not a crash.
func TestSplitterRefusesExtraBytes(t *testing.T) {
	starts := []int64{0, 4, 8, 12}
	var got []int
	s := &splitter{starts: starts, i: 1, last: 2, cur: make([]byte, 0, 4), done: func(i int, _, _ []byte) { got = append(got, i) }}
	if _, err := s.Write([]byte("abcdEFGH")); !errors.Is(err, io.ErrShortWrite) {
		t.Fatalf("8 bytes into a 4-byte group: %v", err)
	}
	r := &splitter{starts: starts, i: 0, last: 1, cur: make([]byte, 0, 4), done: func(int, []byte, []byte) {}}
	if _, err := r.ReadFrom(io.LimitReader(zeros{}, 9)); !errors.Is(err, io.ErrShortWrite) {
		t.Fatalf("ReadFrom past the group: %v", err)
	}
	if len(got) != 1 || got[0] != 1 {
		t.Fatalf("chunks handed on: %v", got)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }
