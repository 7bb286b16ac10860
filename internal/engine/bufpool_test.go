package engine

import "testing"

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
