package fuse

import (
	"context"
	"testing"
)

// TestCacheHoldsLentBuffers: a lent chunk evicted while a reader holds it
// is given back only when the last hold ends, once; one evicted unheld is
// given back at once.
func TestCacheHoldsLentBuffers(t *testing.T) {
	var back [][]byte
	c := newChunkCache(8, func(b []byte) { back = append(back, b) })
	lent := func(s string) []byte { b := []byte(s); return b[:len(b):len(b)] } // the cache counts capacity
	a, b, d := lent("aaaa"), lent("bbbb"), lent("dddd")
	ctx := context.Background()
	noFetch := func(context.Context) ([]byte, []byte, error) { t.Fatal("fetched"); return nil, nil, nil }

	c.finish(chunkKey{"f", 0}, c.claim([]chunkKey{{"f", 0}})[0], a, a, nil)
	got, unhold, err := c.get(ctx, chunkKey{"f", 0}, noFetch)
	if err != nil || string(got) != "aaaa" {
		t.Fatalf("get: %q %v", got, err)
	}
	c.finish(chunkKey{"f", 1}, c.claim([]chunkKey{{"f", 1}})[0], b, b, nil)
	c.finish(chunkKey{"f", 2}, c.claim([]chunkKey{{"f", 2}})[0], d, d, nil) // evicts chunk 0, held
	if len(back) != 0 {
		t.Fatalf("a held chunk was given back: %q", back)
	}
	unhold()
	if len(back) != 1 || &back[0][0] != &a[0] {
		t.Fatalf("after the hold ended: %q", back)
	}
	c.finish(chunkKey{"f", 3}, c.claim([]chunkKey{{"f", 3}})[0], lent("eeee"), lent("eeee"), nil) // evicts chunk 1, unheld
	if len(back) != 2 || &back[1][0] != &b[0] {
		t.Fatalf("an unheld evicted chunk: %q", back)
	}
	// A lent buffer counts by its capacity: 4 bytes in 16 exceed the 8.
	f := make([]byte, 4, 16)
	c.finish(chunkKey{"f", 4}, c.claim([]chunkKey{{"f", 4}})[0], f, f, nil)
	if len(back) != 3 || &back[2][0] != &f[0] || c.used != 8 {
		t.Fatalf("a chunk in a buffer larger than the cache: %q, %d used", back, c.used)
	}
}

// TestClaimSkipsChunksReadOut: a chunk read whole and then pushed out of
// the cache is not claimed again by read-ahead (the kernel has it); one
// pushed out before it was read whole is.
func TestClaimSkipsChunksReadOut(t *testing.T) {
	c := newChunkCache(8, nil)
	put := func(i int, s string) {
		k := chunkKey{"f", i}
		calls := c.claim([]chunkKey{k})
		if len(calls) != 1 {
			t.Fatalf("chunk %d not claimed", i)
		}
		c.finish(k, calls[0], []byte(s), nil, nil)
	}
	put(0, "aaaa")
	put(1, "bbbb")
	if !c.served(chunkKey{"f", 0}, 4) {
		t.Fatal("chunk 0 not read whole")
	}
	c.served(chunkKey{"f", 1}, 2) // half of chunk 1
	put(2, "cccc")                // pushes chunk 0 out (read, at the back)
	put(3, "dddd")                // then chunk 1 (half read)
	if calls := c.claim([]chunkKey{{"f", 0}}); len(calls) != 0 {
		t.Fatal("a chunk read whole and evicted was claimed again")
	}
	if calls := c.claim([]chunkKey{{"f", 1}}); len(calls) != 1 {
		t.Fatal("a chunk evicted half read was not claimed")
	}
}
