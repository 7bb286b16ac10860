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
	lent := func(s string) []byte { return []byte(s) }
	a, b, d := lent("aaaa"), lent("bbbb"), lent("dddd")
	ctx := context.Background()
	noFetch := func(context.Context) ([]byte, error) { t.Fatal("fetched"); return nil, nil }

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
}
