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
type chunkCache struct {
	max int64

	mu       sync.Mutex
	lru      *list.List // of *chunkEntry, most recent first
	m        map[chunkKey]*list.Element
	used     int64
	inflight map[chunkKey]*chunkCall
}

type chunkEntry struct {
	key  chunkKey
	data []byte
}

type chunkCall struct {
	done chan struct{}
	data []byte
	err  error
}

func newChunkCache(max int64) *chunkCache {
	return &chunkCache{max: max, lru: list.New(), m: map[chunkKey]*list.Element{}, inflight: map[chunkKey]*chunkCall{}}
}

// get returns chunk k, fetching it with fetch on a miss.
func (c *chunkCache) get(ctx context.Context, k chunkKey, fetch func(context.Context) ([]byte, error)) ([]byte, error) {
	c.mu.Lock()
	if el, ok := c.m[k]; ok {
		c.lru.MoveToFront(el)
		data := el.Value.(*chunkEntry).data
		c.mu.Unlock()
		return data, nil
	}
	call, waiting := c.inflight[k]
	if !waiting {
		call = &chunkCall{done: make(chan struct{})}
		c.inflight[k] = call
	}
	c.mu.Unlock()
	if waiting {
		select {
		case <-call.done:
			return call.data, call.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	// The fetch outlives one reader's cancel: others may wait on it.
	call.data, call.err = fetch(context.WithoutCancel(ctx))
	c.mu.Lock()
	delete(c.inflight, k)
	if call.err == nil {
		c.add(k, call.data)
	}
	c.mu.Unlock()
	close(call.done)
	return call.data, call.err
}

func (c *chunkCache) add(k chunkKey, data []byte) {
	if int64(len(data)) > c.max {
		return
	}
	c.m[k] = c.lru.PushFront(&chunkEntry{key: k, data: data})
	c.used += int64(len(data))
	for c.used > c.max {
		el := c.lru.Back()
		e := el.Value.(*chunkEntry)
		c.lru.Remove(el)
		delete(c.m, e.key)
		c.used -= int64(len(e.data))
	}
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

// finish ends a claimed fetch of k.
func (c *chunkCache) finish(k chunkKey, call *chunkCall, data []byte, err error) {
	call.data, call.err = data, err
	c.mu.Lock()
	delete(c.inflight, k)
	if err == nil {
		c.add(k, data)
	}
	c.mu.Unlock()
	close(call.done)
}
