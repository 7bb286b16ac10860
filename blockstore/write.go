package blockstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

// Put stores one block durably.
func (s *Store) Put(ctx context.Context, b blocks.Block) error {
	return s.putMany(ctx, []blocks.Block{b}, pebble.Sync)
}

// PutMany stores blocks atomically and durably.
func (s *Store) PutMany(ctx context.Context, bs []blocks.Block) error {
	return s.putMany(ctx, bs, pebble.Sync)
}

// PutManyDeferred stores blocks atomically; they are durable after the next
// Sync (or a later Put/PutMany), and a crash before that may lose them whole.
func (s *Store) PutManyDeferred(ctx context.Context, bs []blocks.Block) error {
	return s.putMany(ctx, bs, pebble.NoSync)
}

// PutLeased is PutManyDeferred with lease ls[i] given to bs[i] (AddLease's
// rules, by by), each block and its lease in the one index batch: a crash
// keeps both or neither.
func (s *Store) PutLeased(ctx context.Context, bs []blocks.Block, ls []Lease, by LeaseBy) error {
	if len(ls) != len(bs) {
		return fmt.Errorf("blockstore: %d leases for %d blocks", len(ls), len(bs))
	}
	now := time.Now()
	for _, l := range ls {
		if _, err := checkLease(l, by, now); err != nil {
			return err
		}
	}
	leases := func(b *pebble.Batch) error {
		for i, blk := range bs {
			if _, err := s.leaseOps(b, blk.Cid(), ls[i], by, now); err != nil {
				return err
			}
		}
		return nil
	}
	return s.putManyWith(ctx, bs, pebble.NoSync, leases)
}

// planned, set by tests only, is called when a put has planned its writes:
// a test deletes a block there that the put found held.
var planned = func() {}

// Sync makes every write before it durable. Concurrent calls share one
// disk sync, and a call with nothing new to sync returns at once: a flood of
// syncs costs one fsync per batch of writes, not one each.
func (s *Store) Sync(ctx context.Context) error {
	if err := s.acquire(); err != nil {
		return err
	}
	defer s.mu.RUnlock()
	want := s.writes.Load()
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	if s.synced >= want {
		return nil // an earlier sync covered every write before this call
	}
	// INVARIANT: writes is bumped after a write completes, so every write
	// counted in now is in the pack files and Pebble's WAL already.
	now := s.writes.Load()
	// Pack data first, then the index that points at it.
	if err := s.packs.sync(); err != nil {
		return err
	}
	if err := s.db.LogData(nil, pebble.Sync); err != nil {
		return fmt.Errorf("blockstore: sync: %w", err)
	}
	s.synced = now
	s.syncs.Add(1)
	return nil
}

// wrote counts a completed write that is not durable yet.
func (s *Store) wrote() { s.writes.Add(1) }

func (s *Store) putMany(ctx context.Context, bs []blocks.Block, wo *pebble.WriteOptions) error {
	return s.putManyWith(ctx, bs, wo, nil)
}

// putManyWith is putMany; leases, if set, adds its writes to the index
// batch, with leaseMu held and every block of bs in the batch or the index.
func (s *Store) putManyWith(ctx context.Context, bs []blocks.Block, wo *pebble.WriteOptions, leases func(*pebble.Batch) error) error {
	if err := s.acquire(); err != nil {
		return err
	}
	defer s.mu.RUnlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, b := range bs {
		if err := CheckCID(b.Cid()); err != nil {
			return fmt.Errorf("%w: %s", err, b.Cid())
		}
		if _, ok := b.(hashedBlock); ok {
			continue // its CID was computed from these bytes
		}
		if err := Verify(b.Cid(), b.RawData()); err != nil {
			return err
		}
	}
	if err := s.countBase(ctx); err != nil {
		return err
	}
	defer s.lockPuts(bs)()
	acts, charge := s.plan(bs)
	planned()
	if !s.claim(charge) {
		return fmt.Errorf("%w (%d bytes more would pass %d)", ErrFull, charge, s.quota.max)
	}
	if err := s.write(bs, acts, wo, leases); err != nil {
		s.release(charge)
		return err
	}
	return nil
}

// lockPuts takes the put locks of bs's blocks (in order: batches sharing
// blocks do not deadlock) and returns the func that gives them back.
func (s *Store) lockPuts(bs []blocks.Block) func() {
	hs := make([]mh.Multihash, len(bs))
	for i, b := range bs {
		hs[i] = b.Cid().Hash()
	}
	return s.lockHashes(hs...)
}

// lockHashes takes the put locks of the blocks of hashes hs.
func (s *Store) lockHashes(hs ...mh.Multihash) func() {
	ids := make([]uint16, 0, len(hs))
	for _, h := range hs {
		var id uint16
		if len(h) >= 2 {
			id = binary.LittleEndian.Uint16(h[len(h)-2:]) % uint16(len(s.putLocks))
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	for _, i := range ids {
		if !s.putLocks[i].TryLock() {
			putLockWaits()
			s.putLocks[i].Lock()
		}
	}
	return func() {
		for _, i := range ids {
			s.putLocks[i].Unlock()
		}
	}
}

// action is what a put does with one block of its batch.
type action uint8

const (
	skip    action = iota // held intact (or earlier in the batch): not written
	store                 // not held: written and charged
	rewrite               // held broken: written, charged when first stored
)

// plan says what to do with each block of a batch, and what the batch
// charges the quota: the blocks not held at all.
// INVARIANT: a held block whose stored copy is intact is never written
// again (convergent puts of the same data write nothing). The stored copy is
// read back and checked first: an index entry can reach disk before its pack
// bytes (a crash between a deferred put and its Sync), and such an entry is
// rewritten with these verified bytes, never trusted, and not charged again.
// Repair deletes before it puts.
func (s *Store) plan(bs []blocks.Block) (acts []action, charge int64) {
	acts = make([]action, len(bs))
	seen := make(map[string]bool, len(bs))
	for i, b := range bs {
		k := string(b.Cid().Hash())
		if seen[k] {
			continue // the same block twice in one batch
		}
		seen[k] = true
		switch s.heldIntact(b.Cid()) {
		case absent:
			charge += Charge(len(b.RawData()))
			acts[i] = store
		case broken:
			acts[i] = rewrite
		}
	}
	return acts, charge
}

// write stores the blocks acts marks: packed values first, then one index
// batch (synced with wo.Sync, after the packs).
func (s *Store) write(bs []blocks.Block, acts []action, wo *pebble.WriteOptions, leases func(*pebble.Batch) error) error {
	vals := make([][]byte, len(bs))
	size := 0
	var locs []location
	defer func() { s.packs.committed(locs) }() // in the index, or given up
	for i, b := range bs {
		if acts[i] == skip {
			continue
		}
		v, err := s.encode(b, &locs)
		if err != nil {
			return err
		}
		vals[i] = v
		size += len(v) + len(b.Cid().Hash()) + 16
	}
	if size == 0 && leases == nil {
		return nil // every block was held already
	}
	var batch *pebble.Batch
	if leases != nil {
		batch = s.db.NewIndexedBatchWithSize(size) // leaseOps reads through it
	} else {
		batch = s.db.NewBatchWithSize(size)
	}
	defer batch.Close()
	for i, b := range bs {
		if vals[i] == nil {
			continue
		}
		if err := batch.Set(key(b.Cid().Hash()), vals[i], nil); err != nil {
			return fmt.Errorf("blockstore: %w", err)
		}
	}
	if leases != nil || slices.Contains(acts, rewrite) {
		s.leaseMu.Lock()
		defer s.leaseMu.Unlock()
		late, err := s.writeGone(bs, acts, batch, &locs)
		if err == nil && leases != nil {
			err = leases(batch)
		}
		if err == nil {
			err = s.commit(batch, wo)
		}
		if err != nil {
			s.release(late) // the caller gives back what plan charged
		}
		return err
	}
	return s.commit(batch, wo)
}

// commit commits an index batch whose pack values are written: with
// wo.Sync, the packs are synced first.
func (s *Store) commit(batch *pebble.Batch, wo *pebble.WriteOptions) error {
	if wo.Sync {
		if err := s.packs.sync(); err != nil {
			return err
		}
	}
	if err := batch.Commit(wo); err != nil {
		return fmt.Errorf("blockstore: write: %w", err)
	}
	if !wo.Sync {
		s.wrote()
	}
	return nil
}

// encode is block b's index value: inline, or its bytes appended to a pack
// (the location added to locs).
func (s *Store) encode(b blocks.Block, locs *[]location) ([]byte, error) {
	data := b.RawData()
	if len(data) < packThreshold {
		return append([]byte{tagInline}, data...), nil
	}
	loc, err := s.packs.append(b.Cid().Hash(), data)
	if err != nil {
		return nil, err
	}
	*locs = append(*locs, loc)
	return encodeLocation(loc), nil
}

// writeGone adds to batch the blocks plan found held that are gone now (GC
// deleted them meanwhile), so that a lease is never written for a block
// the index lacks, and charges the broken blocks the batch rewrites that
// are gone too (GC gave back their charge when it deleted them). Called
// with leaseMu held: GC deletes with it held, so what is found here stays
// until the batch commits. It returns what it charged the quota (claimed;
// the caller releases it if the batch fails).
func (s *Store) writeGone(bs []blocks.Block, acts []action, batch *pebble.Batch, locs *[]location) (int64, error) {
	var charge int64
	inBatch := make(map[string]bool, len(bs))
	for i, b := range bs {
		if acts[i] != skip {
			inBatch[string(b.Cid().Hash())] = true
		}
	}
	for i, b := range bs {
		k := key(b.Cid().Hash())
		if acts[i] == store || acts[i] == skip && inBatch[string(k[1:])] {
			continue
		}
		n, err := s.chargeGone(k, len(b.RawData()))
		charge += n
		if err != nil {
			return charge, err
		}
		if n == 0 || acts[i] == rewrite {
			continue // still held, or a rewrite: its value is in the batch
		}
		v, err := s.encode(b, locs)
		if err != nil {
			return charge, err
		}
		if err := batch.Set(k, v, nil); err != nil {
			return charge, fmt.Errorf("blockstore: %w", err)
		}
		inBatch[string(k[1:])] = true
	}
	return charge, nil
}

// chargeGone claims the quota for a block of size bytes if its index entry
// k is gone now (GC deleted it since plan), and returns what it claimed
// (0: the entry is there).
func (s *Store) chargeGone(k []byte, size int) (int64, error) {
	_, closer, err := s.db.Get(k)
	if err == nil {
		closer.Close()
		return 0, nil
	}
	if !errors.Is(err, pebble.ErrNotFound) {
		return 0, fmt.Errorf("blockstore: %w", err)
	}
	n := Charge(size)
	if !s.claim(n) {
		return 0, fmt.Errorf("%w (%d bytes more would pass %d)", ErrFull, n, s.quota.max)
	}
	return n, nil
}

// DeleteBlock removes a block durably. Deleting a missing block is not an
// error.
func (s *Store) DeleteBlock(ctx context.Context, c cid.Cid) error {
	if err := s.acquire(); err != nil {
		return err
	}
	defer s.mu.RUnlock()
	// A synced commit makes every earlier index entry durable: their pack
	// bytes must be durable first.
	if err := s.packs.sync(); err != nil {
		return err
	}
	if err := s.countBase(ctx); err != nil {
		return err
	}
	// With the block's put lock: a put of it must not commit between the
	// lookup of its size and the delete (the delete would take away a
	// block whose charge stays counted).
	defer s.lockHashes(c.Hash())()
	// With GC's and compaction's lock: a compaction moving this block
	// must not point the index at it again.
	s.leaseMu.Lock()
	defer s.leaseMu.Unlock()
	k := key(c.Hash())
	size := -1
	if v, closer, err := s.db.Get(k); err == nil {
		size = valueSize(v)
		closer.Close()
	}
	deleteLooked()
	if err := s.db.Delete(k, pebble.Sync); err != nil {
		return fmt.Errorf("blockstore: delete %s: %w", Short(c), err)
	}
	if size >= 0 {
		s.release(Charge(size))
	}
	return nil
}

// deleteLooked, set by tests only, is called by DeleteBlock between its
// lookup of the block's size and its delete; putLockWaits when a put lock
// is found taken.
var (
	deleteLooked = func() {}
	putLockWaits = func() {}
)

// held says what the store has of a block.
type held int

const (
	absent held = iota // no index entry
	intact             // an entry whose bytes match the CID
	broken             // an entry whose bytes are lost or wrong
)

// heldIntact looks a block up and checks the stored copy (CRC-32C for
// packed values, then the CID's hash).
func (s *Store) heldIntact(c cid.Cid) held {
	defer s.gate.leave(s.gate.enter()) // reads pack data found in the index
	v, closer, err := s.db.Get(key(c.Hash()))
	if err != nil {
		return absent
	}
	old := bytes.Clone(v)
	closer.Close()
	if stored, err := s.value(c, old, nil, false); err == nil && Verify(c, stored) == nil {
		return intact
	}
	return broken
}
