package fuse

import (
	"container/list"
	"context"
	"sync"
)

// chunkKey names a decrypted chunk: a file's ref and the chunk's index.
type chunkKey struct {
	ref   string
	index int
}

// chunkCache keeps decrypted chunks, least recently used out first,
// within max bytes; concurrent misses of one chunk fetch it once.
//
// A chunk whose buffer the store lent (a store in the daemon hands over
// the engine's buffers whole) is given back through release once it is
// out of the cache and no read answering the kernel still holds it: a
// reader holds a reference from get until its reply is written.
type chunkCache struct {
	max     int64
	release func([]byte) // gives a lent buffer back; nil: none are lent

	mu       sync.Mutex
	lru      *list.List // of *chunkEntry, most recent first
	m        map[chunkKey]*list.Element
	used     int64
	inflight map[chunkKey]*chunkCall
}

type chunkEntry struct {
	key     chunkKey
	data    []byte
	lent    []byte // the store's buffer data lies in, to give back; nil: ours
	refs    int    // readers holding data
	evicted bool
}

type chunkCall struct {
	done chan struct{}
	err  error
}

func newChunkCache(max int64, release func([]byte)) *chunkCache {
	return &chunkCache{max: max, release: release, lru: list.New(), m: map[chunkKey]*list.Element{}, inflight: map[chunkKey]*chunkCall{}}
}

// get returns chunk k, fetching it with fetch on a miss, and the func that
// ends the caller's hold on its bytes (called once, when they are no longer
// used).
func (c *chunkCache) get(ctx context.Context, k chunkKey, fetch func(context.Context) ([]byte, error)) ([]byte, func(), error) {
	var call *chunkCall
	for call == nil {
		c.mu.Lock()
		if el, ok := c.m[k]; ok {
			c.lru.MoveToFront(el)
			e := el.Value.(*chunkEntry)
			e.refs++
			c.mu.Unlock()
			return e.data, func() { c.unref(e) }, nil
		}
		other, waiting := c.inflight[k]
		if !waiting {
			call = &chunkCall{done: make(chan struct{})}
			c.inflight[k] = call
		}
		c.mu.Unlock()
		if waiting {
			select {
			case <-other.done:
				if other.err != nil {
					return nil, nil, other.err
				}
				// Now in the cache (or out again: fetched once more).
			case <-ctx.Done():
				return nil, nil, ctx.Err()
			}
		}
	}
	// The fetch outlives one reader's cancel: others may wait on it.
	data, err := fetch(context.WithoutCancel(ctx))
	call.err = err
	c.mu.Lock()
	delete(c.inflight, k)
	var e *chunkEntry
	if err == nil {
		e = c.add(k, data, nil)
		e.refs++
	}
	c.mu.Unlock()
	close(call.done)
	if err != nil {
		return nil, nil, err
	}
	return data, func() { c.unref(e) }, nil
}

// unref ends one hold on e; an entry already out of the cache gives its
// lent buffer back with the last.
func (c *chunkCache) unref(e *chunkEntry) {
	c.mu.Lock()
	e.refs--
	free := e.refs == 0 && e.evicted
	c.mu.Unlock()
	if free {
		c.giveBack(e)
	}
}

func (c *chunkCache) giveBack(e *chunkEntry) {
	if e.lent != nil && c.release != nil {
		lent := e.lent
		e.lent, e.data = nil, nil
		c.release(lent)
	}
}

// add caches data (lying in the store's buffer lent, if not nil) under k
// and evicts the least recently used beyond max. Under c.mu.
func (c *chunkCache) add(k chunkKey, data, lent []byte) *chunkEntry {
	e := &chunkEntry{key: k, data: data, lent: lent}
	if int64(len(data)) > c.max {
		e.evicted = true // never cached; given back after its readers
		return e
	}
	c.m[k] = c.lru.PushFront(e)
	c.used += int64(len(data))
	for c.used > c.max {
		el := c.lru.Back()
		old := el.Value.(*chunkEntry)
		c.lru.Remove(el)
		delete(c.m, old.key)
		c.used -= int64(len(old.data))
		old.evicted = true
		if old.refs == 0 {
			// Not under c.mu would be better, but release only puts the
			// buffer in a free list.
			c.giveBack(old)
		}
	}
	return e
}

// claim marks as in flight the keys from the start of ks that are neither
// cached nor in flight, stopping at the first that is, and returns their
// calls: a fetch of several chunks at once then finishes each.
func (c *chunkCache) claim(ks []chunkKey) []*chunkCall {
	c.mu.Lock()
	defer c.mu.Unlock()
	var calls []*chunkCall
	for _, k := range ks {
		_, cached := c.m[k]
		_, busy := c.inflight[k]
		if cached || busy {
			break
		}
		call := &chunkCall{done: make(chan struct{})}
		c.inflight[k] = call
		calls = append(calls, call)
	}
	return calls
}

// finish ends a claimed fetch of k: data (in the store's buffer lent, if
// not nil) is cached, or err given to the waiters.
func (c *chunkCache) finish(k chunkKey, call *chunkCall, data, lent []byte, err error) {
	call.err = err
	c.mu.Lock()
	delete(c.inflight, k)
	if err == nil {
		e := c.add(k, data, lent)
		if e.evicted && e.refs == 0 {
			c.giveBack(e)
		}
	}
	c.mu.Unlock()
	close(call.done)
}
