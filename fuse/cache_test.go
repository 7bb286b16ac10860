package fuse

import (
	"context"
	"testing"
	"time"
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

	c.finish(chunkKey{"f", 0}, claim1(c, []chunkKey{{"f", 0}}), a, a, nil)
	got, unhold, err := c.get(ctx, chunkKey{"f", 0}, noFetch)
	if err != nil || string(got) != "aaaa" {
		t.Fatalf("get: %q %v", got, err)
	}
	c.finish(chunkKey{"f", 1}, claim1(c, []chunkKey{{"f", 1}}), b, b, nil)
	c.finish(chunkKey{"f", 2}, claim1(c, []chunkKey{{"f", 2}}), d, d, nil) // evicts chunk 0, held
	if len(back) != 0 {
		t.Fatalf("a held chunk was given back: %q", back)
	}
	unhold()
	if len(back) != 1 || &back[0][0] != &a[0] {
		t.Fatalf("after the hold ended: %q", back)
	}
	c.finish(chunkKey{"f", 3}, claim1(c, []chunkKey{{"f", 3}}), lent("eeee"), lent("eeee"), nil) // evicts chunk 1, unheld
	if len(back) != 2 || &back[1][0] != &b[0] {
		t.Fatalf("an unheld evicted chunk: %q", back)
	}
	// A lent buffer counts by its capacity: 4 bytes in 16 exceed the 8.
	f := make([]byte, 4, 16)
	c.finish(chunkKey{"f", 4}, claim1(c, []chunkKey{{"f", 4}}), f, f, nil)
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
		calls, _ := c.claim([]chunkKey{k}, nil)
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
	if calls, _ := c.claim([]chunkKey{{"f", 0}}, nil); len(calls) != 0 {
		t.Fatal("a chunk read whole and evicted was claimed again")
	}
	if calls, _ := c.claim([]chunkKey{{"f", 1}}, nil); len(calls) != 1 {
		t.Fatal("a chunk evicted half read was not claimed")
	}
}

// TestClaimLeavesRoomForUnread: read-ahead claims stop where the chunks
// cached and not read whole, with the fetches ahead in flight, would pass
// half the cache (the kernel's own reads, many at once, need the rest: a
// read-ahead that filled it pushed out chunks the kernel was half way
// through, and they were fetched again); chunks read whole and chunks
// evicted unread make room again.
func TestClaimLeavesRoomForUnread(t *testing.T) {
	c := newChunkCache(16, nil)
	k := func(i int) chunkKey { return chunkKey{"f", i} }
	calls, full := c.claim([]chunkKey{k(0), k(1), k(2)}, []int64{3, 3, 3})
	if len(calls) != 2 || !full { // 3+3 in flight; 3 more would pass 8
		t.Fatalf("claimed %d (full %v), want 2 and full", len(calls), full)
	}
	c.finish(k(0), calls[0], []byte("aaa"), nil, nil)
	c.finish(k(1), calls[1], []byte("bbb"), nil, nil)
	if c.unread != 6 || c.ahead != 0 {
		t.Fatalf("unread %d, ahead %d after the fetches; want 6, 0", c.unread, c.ahead)
	}
	if calls, full := c.claim([]chunkKey{k(2)}, []int64{3}); len(calls) != 0 || !full {
		t.Fatal("claimed past half the cache while the chunks fetched are unread")
	}
	c.served(k(0), 3) // read whole
	if calls, _ := c.claim([]chunkKey{k(2)}, []int64{3}); len(calls) != 1 {
		t.Fatal("a chunk read whole left no room")
	} else {
		c.finish(k(2), calls[0], []byte("ccc"), nil, nil)
	}
	// A direct read's fetch (no size) is never held back, and pushes the
	// least recently used out: chunk 0 (read), then 1 and 2 (unread).
	c.finish(k(3), claim1(c, []chunkKey{k(3)}), []byte("dddddddd"), nil, nil)
	c.finish(k(4), claim1(c, []chunkKey{k(4)}), []byte("eeeeeeee"), nil, nil)
	_, ok1 := c.m[k(1)]
	_, ok2 := c.m[k(2)]
	if ok1 || ok2 || c.unread != 16 || c.used != 16 {
		t.Fatalf("after evictions: chunks 1, 2 cached %v %v, unread %d, used %d", ok1, ok2, c.unread, c.used)
	}
	// Chunks left half read (a file's first bytes looked at) stop holding
	// read-ahead off once they are staleUnread old.
	c.served(k(3), 1)
	c.served(k(4), 1)
	if calls, full := c.claim([]chunkKey{k(5)}, []int64{1}); len(calls) != 0 || !full {
		t.Fatal("claimed past half the cache")
	}
	for _, el := range c.m {
		el.Value.(*chunkEntry).added = time.Now().Add(-staleUnread - time.Second)
	}
	if calls, _ := c.claim([]chunkKey{k(5)}, []int64{1}); len(calls) != 1 || c.unread != 0 || c.ahead != 1 {
		t.Fatalf("stale half-read chunks held read-ahead off: unread %d, ahead %d", c.unread, c.ahead)
	}
	(&Cache{c}).Clear()
	if c.used != 0 || c.unread != 0 {
		t.Fatalf("cleared: used %d, unread %d", c.used, c.unread)
	}
}

// claim1 claims one chunk of no counted size.
func claim1(c *chunkCache, ks []chunkKey) *chunkCall {
	calls, _ := c.claim(ks, nil)
	return calls[0]
}
