package format

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/umbra-store/umbra/internal/seal"
	"github.com/umbra-store/umbra/keyring"
)

// The decoders: strict (docs/format.md "Decoder strictness"); every
// allocation is bounded by the bytes left before it is made.

type reader struct {
	b   []byte
	err error
}

func (r *reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b) {
		r.err = fmt.Errorf("%w: truncated", ErrMalformed)
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) u8() uint8 {
	if b := r.take(1); b != nil {
		return b[0]
	}
	return 0
}
func (r *reader) u16() uint16 {
	if b := r.take(2); b != nil {
		return binary.BigEndian.Uint16(b)
	}
	return 0
}
func (r *reader) u32() uint32 {
	if b := r.take(4); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}
func (r *reader) u64() uint64 {
	if b := r.take(8); b != nil {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

func decodeVerify(p []byte) (*Node, error) {
	r := &reader{b: p}
	if kind := r.u8(); r.err == nil && kind != KindFile {
		return nil, fmt.Errorf("%w: node kind 0x%02x", ErrMalformed, kind)
	}
	n := &Node{Level: r.u8(), K: int(r.u16()), M: int(r.u16()), Suite: r.u8()}
	count := r.u32()
	np := r.u16()
	if r.err != nil {
		return nil, r.err
	}
	if err := n.check(); err != nil {
		return nil, err
	}
	if n.Suite != seal.SuiteAES256GCM {
		return nil, fmt.Errorf("%w: suite 0x%02x", ErrMalformed, n.Suite)
	}
	if int(np) > MaxPeers {
		return nil, fmt.Errorf("%w: %d peers", ErrMalformed, np)
	}
	if n.Level > 0 && np > 0 {
		return nil, fmt.Errorf("%w: a peer table in a level-%d node", ErrMalformed, n.Level)
	}
	for i := 0; i < int(np) && r.err == nil; i++ {
		l := int(r.u8())
		if l == 0 && r.err == nil {
			return nil, fmt.Errorf("%w: empty peer ID", ErrMalformed)
		}
		if pb := r.take(l); pb != nil {
			n.Peers = append(n.Peers, append([]byte(nil), pb...))
		}
	}
	if r.err != nil {
		return nil, r.err
	}
	minEntry := 64
	if n.Level == 0 {
		minEntry = EntryVerifySize(n.K + n.M)
	}
	if uint64(count)*uint64(minEntry) > uint64(len(r.b)) {
		return nil, fmt.Errorf("%w: %d entries in %d bytes", ErrMalformed, count, len(r.b))
	}
	n.Entries = make([]Entry, count)
	for i := range n.Entries {
		if err := r.verifyEntry(n, i); err != nil {
			return nil, err
		}
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes in verify part", ErrMalformed, len(r.b))
	}
	return n, nil
}

func decodeRead(n *Node, p []byte) error {
	r := &reader{b: p}
	if kind := r.u8(); r.err == nil && kind != KindFile {
		return fmt.Errorf("%w: read part kind 0x%02x", ErrMalformed, kind)
	}
	n.Size = r.u64()
	count := r.u32()
	nl := int(r.u16())
	if r.err == nil && nl > maxNameLen {
		return fmt.Errorf("%w: name of %d bytes", ErrMalformed, nl)
	}
	n.Name = string(r.take(nl))
	if r.err != nil {
		return r.err
	}
	if int(count) != len(n.Entries) {
		return fmt.Errorf("%w: read part has %d entries, verify part %d", ErrMalformed, count, len(n.Entries))
	}
	var total uint64
	for i := range n.Entries {
		e := &n.Entries[i]
		if b := r.take(32); b != nil {
			e.Key, _ = keyring.KeyFromBytes(b)
		}
		e.Size = r.u64()
		if r.err != nil {
			return r.err
		}
		if e.Size == 0 {
			// Only the empty file is empty, and it has no entries: a walk
			// over entries of size zero could be made endless.
			return fmt.Errorf("%w: entry %d is empty", ErrMalformed, i)
		}
		if n.Level == 0 && seal.SealedLen(int(min(e.Size, 1<<40))) != e.SealedLen {
			return fmt.Errorf("%w: entry %d: %d plaintext bytes cannot seal to %d", ErrMalformed, i, e.Size, e.SealedLen)
		}
		if total+e.Size < total {
			return fmt.Errorf("%w: sizes overflow", ErrMalformed)
		}
		total += e.Size
	}
	if total != n.Size {
		return fmt.Errorf("%w: entries sum to %d bytes, node says %d", ErrMalformed, total, n.Size)
	}
	if total > math.MaxInt64 {
		// Offsets in a file are int64: a larger file cannot be read.
		return fmt.Errorf("%w: %d bytes", ErrMalformed, total)
	}
	if len(r.b) != 0 {
		return fmt.Errorf("%w: %d trailing bytes in read part", ErrMalformed, len(r.b))
	}
	return nil
}

// verifyEntry decodes entry i of n's verify part.
func (r *reader) verifyEntry(n *Node, i int) error {
	e := &n.Entries[i]
	if n.Level == 0 {
		e.SealedLen = int(r.u32())
		// An empty chunk never exists (the empty file has no entries):
		// a sealed length of an empty plaintext is refused, so that a
		// crafted manifest cannot make a reader walk entries that add
		// nothing to the file.
		if r.err == nil && (e.SealedLen < seal.SealedLen(1) || e.SealedLen > seal.SealedLen(MaxChunk)) {
			return fmt.Errorf("%w: entry %d sealed length %d", ErrMalformed, i, e.SealedLen)
		}
		sc := shardCount(e.SealedLen, n.K, n.M)
		if sc*34 > len(r.b) {
			return fmt.Errorf("%w: truncated entry %d", ErrMalformed, i)
		}
		e.Shards = make([][32]byte, sc)
		e.Hints = make([]uint16, sc)
		for j := 0; j < sc; j++ {
			copy(e.Shards[j][:], r.take(32))
			e.Hints[j] = r.u16()
			if r.err == nil && e.Hints[j] != NoHint && int(e.Hints[j]) >= len(n.Peers) {
				return fmt.Errorf("%w: hint %d of %d peers", ErrMalformed, e.Hints[j], len(n.Peers))
			}
		}
	} else {
		copy(e.Child[:], r.take(32))
		if b := r.take(32); b != nil {
			e.ChildVKey, _ = keyring.KeyFromBytes(b)
		}
	}
	return r.err
}
