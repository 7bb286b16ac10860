package dirs

import (
	"context"
	"crypto/sha256"
	"sync"
	"unsafe"

	"github.com/umbra-store/umbra/internal/format"
	"github.com/umbra-store/umbra/keyring"
)

// snapCache keeps decoded snapshots, which never change, by root digest
// and read key together: a root with another key is another lookup (the
// engine checks a key against the root's key commitment; the cache must
// never answer for a key it was not given). Sizes are decoded sizes.
// Concurrent misses of one snapshot fetch it once.
type snapCache struct {
	max int64

	mu       sync.Mutex
	m        map[[32]byte]*cached
	used     int64
	tick     uint64
	inflight map[[32]byte]*fetch
}

type cached struct {
	snap *format.Snapshot
	size int64
	used uint64
}

type fetch struct {
	done chan struct{}
	snap *format.Snapshot
	err  error
}

func newSnapCache(max int64) *snapCache {
	return &snapCache{max: max, m: map[[32]byte]*cached{}, inflight: map[[32]byte]*fetch{}}
}

func cacheKey(c keyring.ReadCap) [32]byte {
	root := c.Root()
	return sha256.Sum256(append(root[:], c.ReadKey().Bytes()...))
}

// decodedSize estimates what a decoded snapshot holds in memory.
func decodedSize(s *format.Snapshot) int64 {
	n := int64(len(s.Entries)) * int64(unsafe.Sizeof(format.DirEntry{}))
	for i := range s.Entries {
		n += int64(len(s.Entries[i].Name) + len(s.Entries[i].Data))
	}
	return n
}

func (c *snapCache) get(k [32]byte) (*format.Snapshot, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	if !ok {
		return nil, false
	}
	c.tick++
	e.used = c.tick
	return e.snap, true
}

func (c *snapCache) put(rc keyring.ReadCap, snap *format.Snapshot) {
	k, size := cacheKey(rc), decodedSize(snap)
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[k]; ok || size > c.max {
		return
	}
	c.tick++
	c.m[k] = &cached{snap: snap, size: size, used: c.tick}
	c.used += size
	for c.used > c.max {
		var oldest [32]byte
		first := true
		for key, e := range c.m {
			if first || e.used < c.m[oldest].used {
				oldest, first = key, false
			}
		}
		c.used -= c.m[oldest].size
		delete(c.m, oldest)
	}
}

// readSnapshot fetches and decodes a snapshot, or finds it in the cache.
func (s *Service) readSnapshot(ctx context.Context, c keyring.ReadCap) (*format.Snapshot, error) {
	k := cacheKey(c)
	if snap, ok := s.cache.get(k); ok {
		return snap, nil
	}
	s.cache.mu.Lock()
	f, waiting := s.cache.inflight[k]
	if !waiting {
		f = &fetch{done: make(chan struct{})}
		s.cache.inflight[k] = f
	}
	s.cache.mu.Unlock()
	if waiting {
		select {
		case <-f.done:
			return f.snap, f.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	f.snap, f.err = s.fetchSnapshot(ctx, c)
	if f.err == nil {
		s.cache.put(c, f.snap)
	}
	s.cache.mu.Lock()
	delete(s.cache.inflight, k)
	s.cache.mu.Unlock()
	close(f.done)
	return f.snap, f.err
}

func (s *Service) fetchSnapshot(ctx context.Context, c keyring.ReadCap) (*format.Snapshot, error) {
	b, err := s.readBounded(ctx, c, format.MaxSnapshot, "folder snapshot", format.ErrSnapshot)
	if err != nil {
		return nil, err
	}
	return format.DecodeSnapshot(b)
}
