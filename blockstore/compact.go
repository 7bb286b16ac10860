package blockstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sort"
	"syscall"

	"github.com/cockroachdb/pebble/v2"
)

// Compaction reclaims the pack space of deleted blocks. A pack whose live
// share has fallen to minLive or less has its live records copied to the
// active pack and is then removed:
//
//  1. each live record is read (its CRC checked) and appended to the
//     active pack;
//  2. the packs are synced, then the index entries are moved to the new
//     locations in one synced batch — only those still pointing at the old
//     record (a block deleted or rewritten meanwhile is left alone);
//  3. the old pack is taken out of use, the reads running in it are waited
//     for, and it is closed and unlinked, and the packs directory synced.
//
// A crash before 2 leaves copies nobody points at (dead bytes in the
// active pack, reclaimed by a later compaction); a crash between 2 and 3
// leaves an old pack with no live record, removed by the next compaction.
// Nothing live is lost, and reads check every value's CRC, so a torn copy
// is never served.

// compactStep, set by tests only, is called at each step of a pack's
// rewrite ("copied", "synced", "committed"): a crash test kills the
// process there.
var compactStep = func(string) {}

// minRotate is how large the active pack must be for a compaction to
// close it and rewrite it.
const minRotate = 1 << 20

// DefaultMinLive is the live share at or under which a collection
// rewrites a pack (GC has freed the dead blocks' bytes already: punch.go);
// AllDead rewrites every pack with a dead byte.
const (
	DefaultMinLive = 0.5
	AllDead        = 1.0
)

// CompactStats is what one compaction did.
type CompactStats struct {
	Packs int   `json:"packs"` // packs removed
	Moved int   `json:"moved"` // live blocks copied out of them
	Freed int64 `json:"freed"` // bytes of pack files removed, less those copied
}

// packUse is what the index points at in one pack.
type packUse struct {
	live int64
}

// Compact rewrites the packs (but the active one) whose live share is at
// most minLive.
func (s *Store) Compact(ctx context.Context, minLive float64) (CompactStats, error) {
	var st CompactStats
	victims, err := s.compactVictims(ctx, minLive)
	if err != nil || len(victims) == 0 {
		return st, err
	}
	// A barrier: a write that reserved space in a victim did so while it
	// was the active pack, before the victims were picked; its index entry
	// is in once the pack has no reservation pending.
	s.packs.mu.Lock()
	for _, v := range victims {
		s.packs.waitIdle(v.id, false)
	}
	s.packs.mu.Unlock()
	for _, v := range victims {
		moved, err := s.movePack(ctx, v.id)
		if err != nil {
			return st, err
		}
		size, err := s.dropPack(v.id)
		if err != nil {
			return st, err
		}
		st.Packs++
		st.Moved += moved
		st.Freed += size - v.use.live
	}
	return st, nil
}

// mostlyDead reports whether a pack of size record bytes, u of them live,
// has dead bytes and a live share of at most minLive.
func mostlyDead(u *packUse, size int64, minLive float64) bool {
	var live int64
	if u != nil {
		live = u.live
	}
	return live < size && float64(live) <= minLive*float64(size)
}

type victim struct {
	id  uint32
	use *packUse
}

// compactVictims scans the index for what each pack holds live and picks
// the packs to rewrite.
func (s *Store) compactVictims(ctx context.Context, minLive float64) ([]victim, error) {
	if err := s.acquire(); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	use := map[uint32]*packUse{}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{blockPrefix}, UpperBound: []byte{blockPrefix + 1}})
	if err != nil {
		return nil, fmt.Errorf("blockstore: %w", err)
	}
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return nil, fmt.Errorf("blockstore: %w", err)
		}
		if len(v) != packedLen || v[0] != tagPacked {
			continue
		}
		id := binary.BigEndian.Uint32(v[1:])
		u := use[id]
		if u == nil {
			u = &packUse{}
			use[id] = u
		}
		u.live += int64(binary.BigEndian.Uint32(v[13:])) + 5 + int64(len(it.Key())-1) // data and record header
		if n++; n%4096 == 0 && ctx.Err() != nil {
			it.Close()
			return nil, ctx.Err()
		}
	}
	if err := it.Close(); err != nil {
		return nil, fmt.Errorf("blockstore: %w", err)
	}
	p := s.packs
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []victim
	// The active pack too, once it is mostly dead: a new one is started
	// (the barrier in Compact lets the writes reserved in it finish).
	if u := use[p.active]; p.size-packHeader >= minRotate && mostlyDead(u, inUse(p.files[p.active], p.size)-packHeader, minLive) {
		if err := p.startPack(p.active + 1); err != nil {
			return nil, err
		}
	}
	for id, f := range p.files {
		if id == p.active {
			continue
		}
		fi, err := f.Stat()
		if err != nil || fi.Size() <= packHeader {
			if err == nil {
				out = append(out, victim{id, &packUse{}})
			}
			continue
		}
		u := use[id]
		if u == nil {
			u = &packUse{}
		}
		if mostlyDead(u, inUse(f, fi.Size())-packHeader, minLive) {
			out = append(out, victim{id, u})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out, nil
}

// inUse is the disk space a pack of size bytes takes: what GC punched out
// of it (punch.go) is not dead bytes left to reclaim, only what a deletion
// left (repair on read, a crash before the punch). Rewriting a pack GC
// already freed would copy its live records for nothing.
func inUse(f *os.File, size int64) int64 {
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		return size
	}
	return max(packHeader, min(size, st.Blocks*512))
}

// movePack copies the live records of pack id to the active pack and
// points the index at the copies.
func (s *Store) movePack(ctx context.Context, id uint32) (int, error) {
	if err := s.acquire(); err != nil {
		return 0, err
	}
	defer s.mu.RUnlock()
	var moves []move
	pace := s.newPacer(compactRate, compactBusyRate) // pace.go
	var locs []location
	defer func() { s.packs.committed(locs) }()
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{blockPrefix}, UpperBound: []byte{blockPrefix + 1}})
	if err != nil {
		return 0, fmt.Errorf("blockstore: %w", err)
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return 0, fmt.Errorf("blockstore: %w", err)
		}
		if len(v) != packedLen || v[0] != tagPacked || binary.BigEndian.Uint32(v[1:]) != id {
			continue
		}
		k, old := bytes.Clone(it.Key()), bytes.Clone(v)
		loc, _ := decodeLocation(old) // packed: checked above
		data, err := s.packs.read(loc, nil, false)
		if errors.Is(err, errCorruptValue) {
			// A value that fails its CRC is not copied: it stays refused
			// (it reads as corrupt from nowhere, like a lost pack).
			continue
		}
		if err != nil {
			return 0, err // a disk error: the pack is kept
		}
		nl, err := s.packs.append(k[1:], data)
		if err != nil {
			return 0, err
		}
		locs = append(locs, nl)
		moves = append(moves, move{k, old, encodeLocation(nl)})
		if err := pace.wait(ctx, len(data)); err != nil {
			return 0, err
		}
	}
	compactStep("copied")
	if err := s.packs.sync(); err != nil {
		return 0, err
	}
	compactStep("synced")
	return s.commitMoves(moves)
}

// move is a record copied by a compaction: its index key, and its old and
// new index values.
type move struct{ key, old, new []byte }

// commitMoves points the index at the copies of the records still where
// they were, and frees the copies of the others.
func (s *Store) commitMoves(moves []move) (int, error) {
	// With GC's lock: a block GC deletes now is not pointed at again.
	s.leaseMu.Lock()
	defer s.leaseMu.Unlock()
	b := s.db.NewBatch()
	defer b.Close()
	n := 0
	var orphans []hole // copies of blocks deleted meanwhile
	for _, m := range moves {
		same := false
		if v, closer, err := s.db.Get(m.key); err == nil {
			same = bytes.Equal(v, m.old)
			closer.Close()
		}
		if same {
			_ = b.Set(m.key, m.new, nil)
			n++
		} else if h, ok := holeOf(m.key[1:], m.new); ok {
			orphans = append(orphans, h)
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return 0, fmt.Errorf("blockstore: compact: %w", err)
	}
	compactStep("committed")
	// Nothing points at the orphans (GC deleted their blocks while they
	// were copied): their bytes go now, as GC's did.
	if err := s.packs.punch(context.Background(), orphans, nil); err != nil {
		return n, err
	}
	return n, nil
}

// dropPack takes pack id out of use, waits for the reads running in it,
// then closes and removes it. A read that looked a block up before its
// move was committed, and has not reached the pack yet, is waited for too
// (the read gate): it would find the pack gone.
func (s *Store) dropPack(id uint32) (int64, error) {
	if err := s.acquire(); err != nil {
		return 0, err
	}
	defer s.mu.RUnlock()
	s.gate.wait()
	p := s.packs
	p.mu.Lock()
	f := p.files[id]
	delete(p.files, id)
	delete(p.unsynced, id)
	p.waitIdle(id, true)
	p.mu.Unlock()
	if f == nil {
		return 0, nil
	}
	var size int64
	if fi, err := f.Stat(); err == nil {
		size = fi.Size()
	}
	f.Close()
	if err := os.Remove(p.path(id)); err != nil {
		return 0, fmt.Errorf("blockstore: remove pack: %w", err)
	}
	return size, syncDir(p.dir)
}
