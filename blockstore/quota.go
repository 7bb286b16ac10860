package blockstore

import (
	"context"
	"sync"
	"sync/atomic"
)

// BlockOverhead is what a block costs the store beyond its bytes: its index
// key (35 bytes) and value (21 bytes when packed), Pebble's per-entry
// overhead and a pack record header (39 bytes), rounded up. Quotas charge it
// per block (Charge), so that many tiny blocks cannot hold more disk than
// the quota says.
const BlockOverhead = 128 // bytes

// Charge is what storing a block of size bytes counts against a quota.
func Charge(size int) int64 { return int64(size) + BlockOverhead }

// quota counts what the store holds, as Charge per block, and enforces its
// cap. The count of what was there before the first write comes from a scan
// of the index, made at Open with a cap and, without one, on the first
// write, delete or Used (a read-only session never scans); writes and
// deletes after it are counted as they happen.
type quota struct {
	max   int64        // 0: no cap
	delta atomic.Int64 // charges since Open

	baseMu  sync.Mutex  // one count at a time; writes wait for it
	counted atomic.Bool // base is set
	base    int64
}

// Used returns what the store's blocks count against its quota: their
// bytes and BlockOverhead each.
func (s *Store) Used(ctx context.Context) (int64, error) {
	if err := s.acquire(); err != nil {
		return 0, err
	}
	defer s.mu.RUnlock()
	if err := s.countBase(ctx); err != nil {
		return 0, err
	}
	return s.quota.base + s.quota.delta.Load(), nil
}

// countBase counts what the store holds, once, before any write or delete
// is counted. A count that fails (its caller's ctx ended during the scan)
// is not kept: the next caller counts again.
// INVARIANT: every write and delete calls it before it claims or releases
// a charge, so the scan never counts a block that delta counts too.
func (s *Store) countBase(ctx context.Context) error {
	q := &s.quota
	if q.counted.Load() {
		return nil
	}
	q.baseMu.Lock()
	defer q.baseMu.Unlock()
	if q.counted.Load() {
		return nil
	}
	st, err := s.stats(ctx)
	if err != nil {
		return err
	}
	q.base = st.Charged()
	q.counted.Store(true)
	return nil
}

// claim takes n bytes of the quota, or reports false when they do not fit.
// INVARIANT: a new block's charge is claimed before it is written and given
// back (release) if the write fails, so concurrent writers cannot together
// pass the cap.
func (s *Store) claim(n int64) bool {
	if n == 0 {
		return true
	}
	q := &s.quota
	for {
		cur := q.delta.Load()
		if q.max > 0 && q.base+cur+n > q.max {
			return false
		}
		if q.delta.CompareAndSwap(cur, cur+n) {
			return true
		}
	}
}

// release gives back n bytes of the quota.
func (s *Store) release(n int64) { s.quota.delta.Add(-n) }
