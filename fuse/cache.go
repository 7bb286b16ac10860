package fuse

import (
	"container/list"
	"context"
	"sync"
	"time"
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
	// unread is what the cached chunks not read whole cost (those cached
	// within staleUnread), and ahead the bytes of the read-ahead fetches
	// in flight: read-ahead stops while the two pass half of max, so that
	// the chunks the kernel is reading (it sends many reads at once, each
	// a chunk's part) and those fetched ahead never push each other out
	// before they are read.
	unread, ahead int64
	// readOut notes when chunks read whole left the cache: read-ahead
	// does not claim them again within recentRead (the kernel's page
	// cache has them). Noted here, under mu, so that a read-ahead's claim
	// cannot fall between a chunk's eviction and its note.
	readOut map[chunkKey]time.Time
}

type chunkEntry struct {
	key     chunkKey
	data    []byte
	lent    []byte // the store's buffer data lies in, to give back; nil: ours
	read    int64  // bytes of it read so far (served)
	refs    int    // readers holding data
	evicted bool
	unread  bool      // counted in the cache's unread
	added   time.Time // when it was cached
}

// staleUnread is how long a chunk not read whole counts as about to be
// read: one a reader left half read (a file's first bytes looked at, a
// random read) must not hold read-ahead off for ever.
const staleUnread = 5 * time.Second

type chunkCall struct {
	done chan struct{}
	err  error
	size int64 // a read-ahead claim's bytes (counted in ahead); 0: none
}

// Cache is a cache of decrypted chunks that mounts of one store may share,
// so that a daemon's memory does not grow with the drives it serves. It is
// bounded in bytes; chunks are keyed by their file's capability, so two
// mounts showing one file share its chunks.
type Cache struct{ c *chunkCache }

// NewCache makes a cache of at most max bytes for mounts of st.
func NewCache(max int64, st Store) *Cache {
	var release func([]byte)
	if l, ok := st.(Lender); ok {
		release = l.ReleaseChunk
	}
	return &Cache{newChunkCache(max, release)}
}

// Clear drops every chunk (a chunk a read still holds is given back once
// the read ends): for when no mount is left.
func (c *Cache) Clear() {
	c.c.mu.Lock()
	defer c.c.mu.Unlock()
	for el := c.c.lru.Back(); el != nil; el = c.c.lru.Back() {
		c.c.evict(el)
	}
}

func newChunkCache(max int64, release func([]byte)) *chunkCache {
	return &chunkCache{max: max, release: release, lru: list.New(), m: map[chunkKey]*list.Element{},
		inflight: map[chunkKey]*chunkCall{}, readOut: map[chunkKey]time.Time{}}
}

// get returns chunk k, fetching it with fetch on a miss (its bytes, and
// the store's buffer they lie in if lent), and the func that ends the
// caller's hold on its bytes (called once, when they are no longer used).
func (c *chunkCache) get(ctx context.Context, k chunkKey, fetch func(context.Context) (data, lent []byte, err error)) ([]byte, func(), error) {
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
	data, lent, err := fetch(context.WithoutCancel(ctx))
	call.err = err
	c.mu.Lock()
	delete(c.inflight, k)
	var e *chunkEntry
	if err == nil {
		e = c.add(k, data, lent)
		e.refs++
	}
	c.mu.Unlock()
	close(call.done)
	if err != nil {
		return nil, nil, err
	}
	return data, func() { c.unref(e) }, nil
}

// served counts n bytes of k as read and reports whether that made all
// its bytes read. Such a chunk is the first to be evicted: a sequential
// reader will not ask again (the page cache keeps what it read), and it
// must not push out chunks fetched ahead and not read yet.
func (c *chunkCache) served(k chunkKey, n int64) (whole bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.m[k]
	if !ok {
		return false
	}
	e := el.Value.(*chunkEntry)
	before := e.read
	if e.read += n; e.read >= int64(len(e.data)) {
		c.lru.MoveToBack(el)
		if before < int64(len(e.data)) {
			c.uncount(e)
			return true
		}
	}
	return false
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

// cost is what an entry counts against the cache's bound: the whole
// buffer its bytes lie in when lent (a pooled buffer may be larger).
func (e *chunkEntry) cost() int64 {
	if e.lent != nil {
		return int64(cap(e.lent))
	}
	return int64(len(e.data))
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
	if e.cost() > c.max {
		e.evicted = true // never cached; given back after its readers
		return e
	}
	c.m[k] = c.lru.PushFront(e)
	c.used += e.cost()
	if len(data) > 0 {
		e.unread, e.added = true, time.Now()
		c.unread += e.cost()
	}
	for c.used > c.max {
		c.evict(c.lru.Back())
	}
	return e
}

// evict takes el out of the cache. Under c.mu.
func (c *chunkCache) evict(el *list.Element) {
	old := el.Value.(*chunkEntry)
	c.lru.Remove(el)
	delete(c.m, old.key)
	c.used -= old.cost()
	old.evicted = true
	if old.read >= int64(len(old.data)) {
		c.noteReadOut(old.key)
	}
	c.uncount(old)
	if old.refs == 0 {
		// Not under c.mu would be better, but release only puts the
		// buffer in a free list.
		c.giveBack(old)
	}
}

// claim marks as in flight the keys from the start of ks that are neither
// cached nor in flight, stopping at the first that is, and returns their
// calls: a fetch of several chunks at once then finishes each. sizes (nil:
// none) are the chunks' lengths: claim stops too where the chunks claimed
// would take unread and ahead past half of max (full, then).
func (c *chunkCache) claim(ks []chunkKey, sizes []int64) (calls []*chunkCall, full bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	since := time.Now().Add(-recentRead)
	for i, k := range ks {
		_, cached := c.m[k]
		_, busy := c.inflight[k]
		if cached || busy || c.readOut[k].After(since) {
			break
		}
		var size int64
		if sizes != nil {
			size = sizes[i]
		}
		if size > 0 && c.unread+c.ahead+size > c.max/2 {
			if c.uncountStale(); c.unread+c.ahead+size > c.max/2 {
				return calls, true
			}
		}
		c.ahead += size
		call := &chunkCall{done: make(chan struct{}), size: size}
		c.inflight[k] = call
		calls = append(calls, call)
	}
	return calls, false
}

// uncount takes e out of unread. Under c.mu.
func (c *chunkCache) uncount(e *chunkEntry) {
	if e.unread {
		e.unread = false
		c.unread -= e.cost()
	}
}

// uncountStale takes the chunks cached more than staleUnread ago out of
// unread. Under c.mu.
func (c *chunkCache) uncountStale() {
	old := time.Now().Add(-staleUnread)
	for el := c.lru.Back(); el != nil; el = el.Prev() {
		if e := el.Value.(*chunkEntry); e.unread && e.added.Before(old) {
			c.uncount(e)
		}
	}
}

// finish ends a claimed fetch of k: data (in the store's buffer lent, if
// not nil) is cached, or err given to the waiters.
func (c *chunkCache) finish(k chunkKey, call *chunkCall, data, lent []byte, err error) {
	call.err = err
	c.mu.Lock()
	delete(c.inflight, k)
	c.ahead -= call.size
	if err == nil {
		e := c.add(k, data, lent)
		if e.evicted && e.refs == 0 {
			c.giveBack(e)
		}
	}
	c.mu.Unlock()
	close(call.done)
}

// maxReadOut bounds the chunks read whole that the cache remembers.
const maxReadOut = 4096

// noteReadOut notes that chunk k, read whole, left the cache. Under c.mu.
func (c *chunkCache) noteReadOut(k chunkKey) {
	if len(c.readOut) >= maxReadOut {
		since := time.Now().Add(-recentRead)
		for old, t := range c.readOut {
			if !t.After(since) || len(c.readOut) >= maxReadOut {
				delete(c.readOut, old)
			}
		}
	}
	c.readOut[k] = time.Now()
}
