package blockstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	mh "github.com/multiformats/go-multihash"

	"github.com/umbra-store/umbra/internal/kind"
)

// Leases say how long a block is wanted. A block carries one per storer
// (an owner, or someone maintaining the file): an expiry and the SHA-256
// of a renew secret only that storer knows, which a RENEW or CANCEL must
// show. GC deletes a block once every lease it had has expired (and a
// grace period passed). A block that never had a lease (stored before
// leases, or fetched into this node's own store by a read) is kept.
//
// Index keys (docs/format.md "Blockstore"):
//
//	'l' ‖ multihash ‖ renew hash (32) → expiry u64 (unix seconds; 0: none)
//	'e' ‖ expiry u64 ‖ multihash ‖ renew hash → empty   (finite leases, by expiry)
const (
	leasePrefix  = 'l'
	expiryPrefix = 'e'
)

// MaxLeases is how many leases one block may carry: a storer past it is
// refused (each lease is an index entry nobody is charged for).
const MaxLeases = 16

// MaxLeaseTerm bounds how far ahead a lease may run; a later expiry is
// cut to it.
const MaxLeaseTerm = 2 * 365 * 24 * time.Hour

// Errors of AddLease.
var (
	// ErrTooManyLeases: the block holds as many leases as it may (a RENEW
	// adding one: half as many).
	ErrTooManyLeases = kind.New(kind.Full, "blockstore: the block has as many leases as it may")
	// ErrLeaseExpired: a lease that ends before now is not taken (it could
	// only make a block collectable that nobody asked to expire).
	ErrLeaseExpired = kind.New(kind.Usage, "blockstore: the lease has already expired")
)

// LeaseBy says who adds a lease, which bounds it.
type LeaseBy int

const (
	// ByStore: a STORE (a peer that sent the block) or this node's own put
	// with an expiry: any free slot.
	ByStore LeaseBy = iota
	// ByRenew: a RENEW adding a lease to a block held without it; it may
	// take at most MaxLeases/2 slots, so that strangers who know a CID
	// cannot fill them all.
	ByRenew
	// Forever: this node's own copy, kept without an expiry (0 stays 0,
	// not cut to MaxLeaseTerm): a lease nobody can end but this node.
	Forever
)

// Lease is one storer's claim on a block.
type Lease struct {
	Expiry uint64   // unix seconds; 0: no expiry
	Hash   [32]byte // SHA-256 of the storer's renew secret
}

// later reports whether expiry a runs longer than b (0 runs for ever).
func later(a, b uint64) bool { return b != 0 && (a == 0 || a > b) }

func leaseKey(h mh.Multihash, hash [32]byte) []byte {
	k := make([]byte, 0, 1+len(h)+32)
	k = append(append(append(k, leasePrefix), h...), hash[:]...)
	return k
}

func expiryKey(exp uint64, h mh.Multihash, hash [32]byte) []byte {
	k := make([]byte, 9, 9+len(h)+32)
	k[0] = expiryPrefix
	binary.BigEndian.PutUint64(k[1:], exp)
	return append(append(k, h...), hash[:]...)
}

// clampExpiry cuts an expiry to MaxLeaseTerm from now.
func clampExpiry(exp uint64, now time.Time) uint64 {
	limit := uint64(now.Add(MaxLeaseTerm).Unix())
	if exp == 0 || exp > limit {
		return limit
	}
	return exp
}

// AddLease gives the held block c the lease l, or, if it has a lease of
// the same hash, runs that one until l.Expiry if that is later. An expiry
// past MaxLeaseTerm from now is cut to it (an expiry of 0, none, too,
// unless by is Forever); one already past is refused (ErrLeaseExpired).
// The change is durable at the next Sync. A block not held is
// ipld.ErrNotFound.
func (s *Store) AddLease(ctx context.Context, c cid.Cid, l Lease, by LeaseBy) error {
	if err := s.acquire(); err != nil {
		return err
	}
	defer s.mu.RUnlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	s.leaseMu.Lock()
	defer s.leaseMu.Unlock()
	if _, closer, err := s.db.Get(key(c.Hash())); err != nil {
		return ipld.ErrNotFound{Cid: c}
	} else {
		closer.Close()
	}
	b := s.db.NewIndexedBatch()
	defer b.Close()
	changed, err := s.leaseOps(b, c, l, by, time.Now())
	if err != nil || !changed {
		return err
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("blockstore: lease: %w", err)
	}
	s.wrote()
	return nil
}

// checkLease refuses a lease that has already expired (by Forever takes
// any) and returns it with its expiry cut to MaxLeaseTerm.
func checkLease(l Lease, by LeaseBy, now time.Time) (Lease, error) {
	if by == Forever {
		return l, nil
	}
	if l.Expiry != 0 && l.Expiry <= uint64(now.Unix()) {
		return l, ErrLeaseExpired
	}
	l.Expiry = clampExpiry(l.Expiry, now)
	return l, nil
}

// leaseOps adds to b the writes that give c the lease l (AddLease's
// rules), and reports whether there are any. It reads through b (an
// indexed batch): a batch that gives one block several leases, or one
// lease twice, counts and extends what it has written itself. Called with
// leaseMu held.
func (s *Store) leaseOps(b *pebble.Batch, c cid.Cid, l Lease, by LeaseBy, now time.Time) (bool, error) {
	l, err := checkLease(l, by, now)
	if err != nil {
		return false, err
	}
	h := c.Hash()
	lk := leaseKey(h, l.Hash)
	if v, closer, err := b.Get(lk); err == nil {
		old := binary.BigEndian.Uint64(v)
		closer.Close()
		if !later(l.Expiry, old) {
			return false, nil
		}
		if old != 0 {
			_ = b.Delete(expiryKey(old, h, l.Hash), nil)
		}
	} else {
		n, err := countLeases(b, h)
		if err != nil {
			return false, err
		}
		if limit := MaxLeases; n >= limit || by == ByRenew && n >= limit/2 {
			return false, fmt.Errorf("%w (%s)", ErrTooManyLeases, Short(c))
		}
	}
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], l.Expiry)
	_ = b.Set(lk, v[:], nil)
	if l.Expiry != 0 {
		_ = b.Set(expiryKey(l.Expiry, h, l.Hash), nil, nil)
	}
	return true, nil
}

// CancelLease ends the lease of hash on c now: the block goes at the next
// GC after the grace period unless another lease holds it. No such lease:
// ipld.ErrNotFound.
func (s *Store) CancelLease(ctx context.Context, c cid.Cid, hash [32]byte) error {
	if err := s.acquire(); err != nil {
		return err
	}
	defer s.mu.RUnlock()
	s.leaseMu.Lock()
	defer s.leaseMu.Unlock()
	h := c.Hash()
	lk := leaseKey(h, hash)
	v, closer, err := s.db.Get(lk)
	if err != nil {
		return ipld.ErrNotFound{Cid: c}
	}
	old := binary.BigEndian.Uint64(v)
	closer.Close()
	now := uint64(time.Now().Unix())
	if old != 0 && old <= now {
		return nil
	}
	b := s.db.NewBatch()
	defer b.Close()
	if old != 0 {
		_ = b.Delete(expiryKey(old, h, hash), nil)
	}
	var nv [8]byte
	binary.BigEndian.PutUint64(nv[:], now)
	_ = b.Set(lk, nv[:], nil)
	_ = b.Set(expiryKey(now, h, hash), nil, nil)
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("blockstore: lease: %w", err)
	}
	return nil
}

// Leases returns the leases c carries.
func (s *Store) Leases(ctx context.Context, c cid.Cid) ([]Lease, error) {
	if err := s.acquire(); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	var out []Lease
	err := eachLease(s.db, c.Hash(), func(l Lease) bool { out = append(out, l); return true })
	return out, err
}

// eachLease calls f with each lease of h in r until f returns false.
func eachLease(r pebble.Reader, h mh.Multihash, f func(Lease) bool) error {
	lo := append([]byte{leasePrefix}, h...)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: prefixEnd(lo)})
	if err != nil {
		return fmt.Errorf("blockstore: %w", err)
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		if len(k) != len(lo)+32 {
			continue // another multihash's (umbra's are all one length)
		}
		var l Lease
		copy(l.Hash[:], k[len(lo):])
		l.Expiry = binary.BigEndian.Uint64(it.Value())
		if !f(l) {
			break
		}
	}
	return nil
}

// prefixEnd returns the first key after every key starting with p.
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

func countLeases(r pebble.Reader, h mh.Multihash) (int, error) {
	n := 0
	err := eachLease(r, h, func(Lease) bool { n++; return true })
	return n, err
}

// GCStats is what one collection did.
type GCStats struct {
	Leases int   `json:"leases"` // expired leases removed
	Blocks int   `json:"blocks"` // blocks deleted: every lease they had expired
	Bytes  int64 `json:"bytes"`  // their bytes
	// Compaction (Collect only).
	Packs     int   `json:"packs"`     // pack files rewritten and removed
	Reclaimed int64 `json:"reclaimed"` // disk bytes given back
}

// Collect runs GC, then compacts the packs left with a live share of at
// most minLive (DefaultMinLive, or AllDead).
func (s *Store) Collect(ctx context.Context, now time.Time, grace time.Duration, minLive float64) (GCStats, error) {
	st, err := s.GC(ctx, now, grace)
	if err != nil {
		return st, err
	}
	c, err := s.Compact(ctx, minLive)
	st.Packs, st.Reclaimed = c.Packs, c.Freed
	return st, err
}

// gcBatch is how many expired leases one round of GC takes.
const gcBatch = 4096

// GC removes the leases that expired more than grace before now, deletes
// the blocks left without a lease, and frees their bytes in the packs
// (punch.go); the space of their record headers waits for compaction.
func (s *Store) GC(ctx context.Context, now time.Time, grace time.Duration) (GCStats, error) {
	var st GCStats
	cut := now.Add(-grace).Unix()
	if cut <= 0 {
		return st, nil
	}
	for {
		n, err := s.gcRound(ctx, uint64(cut), &st)
		if err != nil || n < gcBatch {
			return st, err
		}
	}
}

// gcRound removes up to gcBatch leases expired before cut, then the blocks
// they left bare, in one synced batch, and frees their bytes (after the
// lease lock is let go: the punches are paced, and puts go on meanwhile).
func (s *Store) gcRound(ctx context.Context, cut uint64, st *GCStats) (int, error) {
	if err := s.acquire(); err != nil {
		return 0, err
	}
	defer s.mu.RUnlock()
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := s.countBase(ctx); err != nil {
		return 0, err
	}
	n, holes, err := s.gcIndex(cut, st)
	if err != nil || n == 0 {
		return n, err
	}
	// The bytes go now (punch.go): first the reads that may have found
	// the entries before the commit.
	s.gate.wait()
	return n, s.packs.punch(ctx, holes, s.newPacer(0, punchBusyRate))
}

// gcIndex removes up to gcBatch leases expired before cut and the blocks
// they left bare from the index, in one synced batch, and returns how many
// leases it removed and where the blocks' bytes lie.
func (s *Store) gcIndex(cut uint64, st *GCStats) (int, []hole, error) {
	s.leaseMu.Lock()
	defer s.leaseMu.Unlock()
	var hi [9]byte
	hi[0] = expiryPrefix
	binary.BigEndian.PutUint64(hi[1:], cut)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{expiryPrefix}, UpperBound: hi[:]})
	if err != nil {
		return 0, nil, fmt.Errorf("blockstore: %w", err)
	}
	b := s.db.NewBatch()
	defer b.Close()
	touched := map[string]bool{}
	gone := map[string]bool{} // lease keys this batch deletes
	n := 0
	for ok := it.First(); ok && n < gcBatch; ok = it.Next() {
		k := it.Key()
		if len(k) < 9+32+2 {
			continue
		}
		h := k[9 : len(k)-32]
		var hash [32]byte
		copy(hash[:], k[len(k)-32:])
		lk := leaseKey(h, hash)
		_ = b.Delete(bytes.Clone(k), nil)
		_ = b.Delete(lk, nil)
		gone[string(lk)] = true
		touched[string(h)] = true
		n++
	}
	if err := it.Close(); err != nil {
		return 0, nil, fmt.Errorf("blockstore: %w", err)
	}
	if n == 0 {
		return 0, nil, nil
	}
	var holes []hole
	freed, err := s.deleteBare(b, touched, gone, st, &holes)
	if err != nil {
		return 0, nil, err
	}
	// A synced commit makes earlier index entries durable: their pack
	// bytes first.
	if err := s.packs.sync(); err != nil {
		return 0, nil, err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return 0, nil, fmt.Errorf("blockstore: gc: %w", err)
	}
	s.release(freed)
	st.Leases += n
	return n, holes, nil
}

// deleteBare adds to b the deletion of each block of touched left without
// a lease once the lease keys in gone are deleted (the batch's deletes
// are not in the index yet), and returns their charge; where their bytes
// lie is added to holes.
func (s *Store) deleteBare(b *pebble.Batch, touched, gone map[string]bool, st *GCStats, holes *[]hole) (int64, error) {
	var freed int64
	for h := range touched {
		left := 0
		err := eachLease(s.db, mh.Multihash(h), func(l Lease) bool {
			if !gone[string(leaseKey(mh.Multihash(h), l.Hash))] {
				left++
			}
			return true
		})
		if err != nil {
			return 0, err
		}
		if left > 0 {
			continue
		}
		bk := key(mh.Multihash(h))
		if v, closer, err := s.db.Get(bk); err == nil {
			size := valueSize(v)
			if hl, ok := holeOf([]byte(h), v); ok {
				*holes = append(*holes, hl)
			}
			closer.Close()
			freed += Charge(size)
			st.Bytes += int64(size)
			st.Blocks++
			_ = b.Delete(bk, nil)
		}
	}
	return freed, nil
}
