package blockstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	mh "github.com/multiformats/go-multihash"

	"github.com/umbra-store/umbra/internal/kind"
)

func encodeLocation(l location) []byte {
	v := make([]byte, 0, packedLen)
	v = append(v, tagPacked)
	v = binary.BigEndian.AppendUint32(v, l.pack)
	v = binary.BigEndian.AppendUint64(v, uint64(l.offset))
	v = binary.BigEndian.AppendUint32(v, l.length)
	return binary.BigEndian.AppendUint32(v, l.crc)
}

// decodeLocation reads a packed index value (encodeLocation's).
func decodeLocation(v []byte) (location, bool) {
	if len(v) != packedLen || v[0] != tagPacked {
		return location{}, false
	}
	return location{
		pack:   binary.BigEndian.Uint32(v[1:]),
		offset: int64(binary.BigEndian.Uint64(v[5:])),
		length: binary.BigEndian.Uint32(v[13:]),
		crc:    binary.BigEndian.Uint32(v[17:]),
	}, true
}

// value resolves an index value to the block bytes (a fresh slice), a
// packed value checked against its CRC-32C unless skipCRC.
func (s *Store) value(c cid.Cid, v []byte, get func(n int) []byte, skipCRC bool) ([]byte, error) {
	if len(v) == 0 {
		return nil, fmt.Errorf("%w: %s: empty index entry", ErrHashMismatch, Short(c))
	}
	switch v[0] {
	case tagInline:
		if get != nil {
			b := get(len(v) - 1)
			if len(b) < len(v)-1 {
				return nil, fmt.Errorf("%w: %s is %d bytes", ErrTooLarge, Short(c), len(v)-1)
			}
			copy(b, v[1:])
			return b, nil
		}
		return bytes.Clone(v[1:]), nil
	case tagPacked:
		loc, ok := decodeLocation(v)
		if !ok {
			return nil, fmt.Errorf("%w: %s: bad index entry", ErrHashMismatch, Short(c))
		}
		data, err := s.packs.read(loc, get, skipCRC)
		if errors.Is(err, ErrTooLarge) {
			return nil, fmt.Errorf("%w: %s is %d bytes", err, Short(c), loc.length)
		}
		if errors.Is(err, errCorruptValue) {
			return nil, fmt.Errorf("%w: %s: %v", ErrHashMismatch, Short(c), err)
		}
		if err != nil {
			return nil, kind.Mark(fmt.Errorf("blockstore: read %s: %w", Short(c), err), kind.IO)
		}
		return data, nil
	}
	return nil, fmt.Errorf("%w: %s: unknown index tag 0x%02x", ErrHashMismatch, Short(c), v[0])
}

// size returns a block's size from its index value.
func valueSize(v []byte) int {
	if len(v) == packedLen && v[0] == tagPacked {
		return int(binary.BigEndian.Uint32(v[13:]))
	}
	return max(len(v)-1, 0)
}

// Get returns a block, or an error satisfying ipld.IsNotFound.
func (s *Store) Get(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	data, err := s.GetInto(ctx, c, nil)
	if err != nil {
		return nil, err
	}
	return blocks.NewBlockWithCid(data, c)
}

// GetInto returns a block's bytes like Get, read into a buffer from get
// (called with the block's size, returning at least that many bytes) for a
// caller that recycles buffers. A nil get allocates. get may refuse a size
// by returning nil (or less): GetInto then fails with ErrTooLarge, having
// read nothing.
func (s *Store) GetInto(ctx context.Context, c cid.Cid, get func(n int) []byte) ([]byte, error) {
	return s.getInto(c, get, false)
}

// GetIntoUnchecked is GetInto without the pack's CRC-32C check, for a
// caller that checks the bytes against c's hash before it uses them (the
// engine's and the fetcher's reads): the hash is the stronger check, and
// the CRC would only repeat it (4% of a local get). Damaged bytes are then
// refused by that caller, as ErrHashMismatch. Readers that do not hash
// (the shard server) use GetInto.
func (s *Store) GetIntoUnchecked(ctx context.Context, c cid.Cid, get func(n int) []byte) ([]byte, error) {
	return s.getInto(c, get, true)
}

func (s *Store) getInto(c cid.Cid, get func(n int) []byte, skipCRC bool) ([]byte, error) {
	if CheckCID(c) != nil {
		return nil, ipld.ErrNotFound{Cid: c}
	}
	if err := s.acquire(); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	// Through the gate from before the lookup to after the read: GC
	// punches a deleted block's bytes only once no read can have found it.
	defer s.gate.leave(s.gate.enter())
	v, closer, err := s.db.Get(key(c.Hash()))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, ipld.ErrNotFound{Cid: c}
	}
	if err != nil {
		return nil, fmt.Errorf("blockstore: read %s: %w", Short(c), err)
	}
	afterLookup()
	data, err := s.value(c, v, get, skipCRC)
	closer.Close()
	if err != nil {
		return nil, err
	}
	return data, nil
}

// afterLookup, set by tests only, is called by a read between its index
// lookup and its pack read.
var afterLookup = func() {}

// GetSize returns the size of a block.
func (s *Store) GetSize(ctx context.Context, c cid.Cid) (int, error) {
	if CheckCID(c) != nil {
		return -1, ipld.ErrNotFound{Cid: c}
	}
	if err := s.acquire(); err != nil {
		return -1, err
	}
	defer s.mu.RUnlock()
	v, closer, err := s.db.Get(key(c.Hash()))
	if errors.Is(err, pebble.ErrNotFound) {
		return -1, ipld.ErrNotFound{Cid: c}
	}
	if err != nil {
		return -1, fmt.Errorf("blockstore: read %s: %w", Short(c), err)
	}
	n := valueSize(v)
	closer.Close()
	return n, nil
}

// Has reports whether a block is stored, reading only its key.
func (s *Store) Has(ctx context.Context, c cid.Cid) (bool, error) {
	if CheckCID(c) != nil {
		return false, nil
	}
	if err := s.acquire(); err != nil {
		return false, err
	}
	defer s.mu.RUnlock()
	k := key(c.Hash())
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: k, UpperBound: append(bytes.Clone(k), 0)})
	if err != nil {
		return false, fmt.Errorf("blockstore: %w", err)
	}
	ok := it.First()
	if err := it.Close(); err != nil {
		return false, fmt.Errorf("blockstore: %w", err)
	}
	return ok, nil
}

// AllKeysChan lists every stored block as a CIDv1 with the raw codec.
func (s *Store) AllKeysChan(ctx context.Context) (<-chan cid.Cid, error) {
	if err := s.acquire(); err != nil {
		return nil, err
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{blockPrefix}, UpperBound: []byte{blockPrefix + 1}})
	if err != nil {
		s.mu.RUnlock()
		return nil, fmt.Errorf("blockstore: %w", err)
	}
	ch := make(chan cid.Cid, 64)
	go func() {
		// The listing holds the shared lock until it ends; Close ends it.
		defer s.mu.RUnlock()
		defer close(ch)
		defer it.Close()
		for ok := it.First(); ok; ok = it.Next() {
			h, err := mh.Cast(bytes.Clone(it.Key()[1:]))
			if err != nil {
				continue
			}
			select {
			case ch <- cid.NewCidV1(cid.Raw, h):
			case <-ctx.Done():
				return
			case <-s.closing:
				return
			}
		}
	}()
	return ch, nil
}

// Stats summarises what the store holds.
type Stats struct {
	Blocks int
	Bytes  int64
}

// Charged is what the store's blocks count against a quota: their bytes
// plus BlockOverhead each.
func (st Stats) Charged() int64 { return st.Bytes + int64(st.Blocks)*BlockOverhead }

// Stats counts blocks and their bytes (a full key scan; the values are not
// read, sizes come from Pebble's lazy values).
func (s *Store) Stats(ctx context.Context) (Stats, error) {
	if err := s.acquire(); err != nil {
		return Stats{}, err
	}
	defer s.mu.RUnlock()
	return s.stats(ctx)
}

// stats is Stats with the store's lock held.
func (s *Store) stats(ctx context.Context) (Stats, error) {
	var st Stats
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{blockPrefix}, UpperBound: []byte{blockPrefix + 1}})
	if err != nil {
		return st, fmt.Errorf("blockstore: %w", err)
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		st.Blocks++
		v, err := it.ValueAndErr()
		if err != nil {
			return st, fmt.Errorf("blockstore: %w", err)
		}
		st.Bytes += int64(valueSize(v))
		if st.Blocks%4096 == 0 && ctx.Err() != nil {
			return st, ctx.Err()
		}
	}
	return st, nil
}
