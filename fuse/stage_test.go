package fuse

import (
	"bytes"
	"io"
	"math/rand/v2"
	"os"
	"testing"
)

// TestStage writes at random offsets, truncates and grows a staged file
// past the memory limit, and reads it back like a plain byte slice; the
// staging directory holds no plaintext and no file name.
func TestStage(t *testing.T) {
	dir := t.TempDir()
	s := newStage(dir)
	defer s.Close()
	var want []byte
	r := rand.New(rand.NewPCG(1, 2))
	marker := bytes.Repeat([]byte("PLAINTEXT-MARKER."), 64)
	write := func(off int64, p []byte) {
		if err := s.WriteAt(p, off); err != nil {
			t.Fatal(err)
		}
		if end := off + int64(len(p)); end > int64(len(want)) {
			want = append(want, make([]byte, end-int64(len(want)))...)
		}
		copy(want[off:], p)
	}
	for i := 0; i < 200; i++ {
		write(r.Int64N(3*stageMem), marker[:r.IntN(len(marker))])
	}
	for _, size := range []int64{stageMem + 5, 100, 2*stageMem + 7} {
		if err := s.Truncate(size); err != nil {
			t.Fatal(err)
		}
		if size < int64(len(want)) {
			want = want[:size]
		} else {
			want = append(want, make([]byte, size-int64(len(want)))...)
		}
		write(r.Int64N(size), marker[:100])
		got, err := io.ReadAll(s.Reader())
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("after truncate to %d: %d bytes, %v", size, len(got), err)
		}
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 0 {
		t.Fatalf("staging directory holds %d names", len(ents))
	}
	// The open, unlinked file: no marker in it.
	raw, _ := io.ReadAll(io.NewSectionReader(s.f, 0, 1<<30))
	if len(raw) == 0 || bytes.Contains(raw, marker[:32]) {
		t.Fatalf("staged bytes: %d, plaintext visible", len(raw))
	}
}
