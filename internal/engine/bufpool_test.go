package engine

import (
	"bytes"
	"context"
	"crypto/sha256"
	"runtime"
	"testing"

	"github.com/umbra-store/umbra/internal/randstream"
)

// TestBufPool: a slice comes back as the best fit of at most twice the
// size asked, new ones are rounded up to bufStep, and the free list keeps
// at most max bytes, the oldest going first.
func TestBufPool(t *testing.T) {
	bp := newBufPool(4 * bufStep)
	a := bp.get(bufStep + 1)
	if cap(a) != 2*bufStep || len(a) != bufStep+1 {
		t.Fatalf("new slice: len %d cap %d", len(a), cap(a))
	}
	b := bp.get(1)
	bp.put(a)
	bp.put(b)
	if got := bp.get(10); &got[:1][0] != &b[:1][0] {
		t.Fatal("not the best fit")
	}
	if got := bp.get(5 * bufStep); cap(got) == cap(a) {
		t.Fatal("a slice too small handed out")
	}
	bp.put(a)
	if got := bp.get(2); cap(got) != bufStep {
		t.Fatalf("a slice over twice the size asked handed out: cap %d", cap(got))
	}
	// a is still free; two more of 2 steps evict it, the oldest.
	bp.put(make([]byte, 2*bufStep))
	bp.put(make([]byte, 2*bufStep))
	if bp.held != 4*bufStep || len(bp.free) != 2 {
		t.Fatalf("held %d in %d slices, want %d in 2", bp.held, len(bp.free), 4*bufStep)
	}
	for _, f := range bp.free {
		if &f[:1][0] == &a[:1][0] {
			t.Fatal("the oldest slice was kept")
		}
	}
	bp.put(make([]byte, 5*bufStep)) // larger than the bound: dropped
	if bp.held != 4*bufStep {
		t.Fatalf("held %d", bp.held)
	}
}

// TestLocalGetReusesBuffers: a get from the local store reads shards into
// pooled buffers and opens chunks in pooled buffers: once the pools are
// warm, reading 32 MiB allocates a small fraction of that.
func TestLocalGetReusesBuffers(t *testing.T) {
	ctx := context.Background()
	e := New(openStore(t), testSecrets(7))
	src := randstream.Bytes(3, 32<<20)
	res, err := e.Put(ctx, bytes.NewReader(src), PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256(src)
	get := func() {
		h := sha256.New()
		if err := e.ReadRange(ctx, res.Cap, 0, -1, h); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(h.Sum(nil), want[:]) {
			t.Fatal("read back wrong")
		}
	}
	get() // warms the pools
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	get()
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > uint64(len(src))/4 {
		t.Fatalf("a local get of %d bytes allocated %d", len(src), n)
	}
}
