package blockstore

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"

	"golang.org/x/sys/unix"
)

// Garbage collection frees a deleted block's bytes at once: once the
// index deletion is committed (synced), the block's range in its pack is
// punched out (fallocate PUNCH_HOLE: the filesystem frees the blocks and
// the range reads as zeros; where the filesystem cannot punch, zeros are
// written over it), and the pack synced. Expired shards are then gone
// from the disk without copying a byte of the live records around them;
// compaction is left to packs that are mostly dead (the space of their
// record headers and the pack count). A crash between the commit and the
// punch leaves the dead bytes until the pack is compacted.
//
// A read looks the block up in the index and then reads the pack: one
// that found the entry just before its deletion committed must not read
// the range as it is punched (it would report a corrupt block). Reads
// enter a readGate before the lookup; the punch first drains the reads
// that entered before it.

// readGate lets a punch wait for the reads in flight when it starts,
// without waiting for the reads that start after it (which cannot find
// the deleted entries).
type readGate struct {
	mu    sync.Mutex
	left  *sync.Cond
	gen   uint64
	in    [2]int     // reads in flight by the parity of the generation they entered
	drain sync.Mutex // one drain at a time
}

func newReadGate() *readGate {
	g := &readGate{}
	g.left = sync.NewCond(&g.mu)
	return g
}

// enter registers a read; the ticket is for leave.
func (g *readGate) enter() uint64 {
	g.mu.Lock()
	t := g.gen
	g.in[t&1]++
	g.mu.Unlock()
	return t
}

func (g *readGate) leave(t uint64) {
	g.mu.Lock()
	if g.in[t&1]--; g.in[t&1] == 0 {
		g.left.Broadcast()
	}
	g.mu.Unlock()
}

// wait returns once every read that entered before it has left.
func (g *readGate) wait() {
	g.drain.Lock()
	defer g.drain.Unlock()
	g.mu.Lock()
	defer g.mu.Unlock()
	old := g.gen
	g.gen++
	for g.in[old&1] > 0 {
		g.left.Wait()
	}
}

// holeOf returns where the bytes of a packed index value lie.
func holeOf(v []byte) (location, bool) {
	if len(v) != packedLen || v[0] != tagPacked {
		return location{}, false
	}
	return location{
		pack:   binary.BigEndian.Uint32(v[1:]),
		offset: int64(binary.BigEndian.Uint64(v[5:])),
		length: binary.BigEndian.Uint32(v[13:]),
	}, true
}

// zeros is what is written over a range a filesystem cannot punch.
var zeros = make([]byte, 256<<10)

// punch frees the bytes at each location (deleted blocks whose index
// entries are gone, the reads that could have found them drained) and
// syncs the packs it changed. The packs are held as if read meanwhile, so
// that a compaction does not close one under it.
func (p *packs) punch(holes []location) error {
	files := map[uint32]*os.File{}
	p.mu.Lock()
	for _, h := range holes {
		if f := p.files[h.pack]; f != nil && files[h.pack] == nil {
			files[h.pack] = f
			p.reading[h.pack]++
		}
	}
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		for id := range files {
			if p.reading[id]--; p.reading[id] <= 0 {
				delete(p.reading, id)
			}
		}
		p.idle.Broadcast()
		p.mu.Unlock()
	}()
	for _, h := range mergeHoles(holes) {
		f := files[h.pack]
		if f == nil || h.length == 0 {
			continue // the pack is gone already
		}
		err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, h.offset, int64(h.length))
		if errors.Is(err, unix.EOPNOTSUPP) {
			err = zeroRange(f, h.offset, int64(h.length))
		}
		if err != nil {
			return fmt.Errorf("blockstore: free a deleted block: %w", err)
		}
	}
	for _, f := range files {
		if err := unix.Fdatasync(int(f.Fd())); err != nil {
			return fmt.Errorf("blockstore: sync pack: %w", err)
		}
	}
	return nil
}

// mergeHoles sorts holes and joins those of one pack that only a record
// header separates: a file's shards lie one after another, and one punch
// then frees them all (their headers, which name them, too). A live record
// holds at least packThreshold bytes, so a smaller gap holds none.
func mergeHoles(holes []location) []location {
	hs := slices.Clone(holes)
	slices.SortFunc(hs, func(a, b location) int {
		if a.pack != b.pack {
			return cmp.Compare(a.pack, b.pack)
		}
		return cmp.Compare(a.offset, b.offset)
	})
	var out []location
	for _, h := range hs {
		if n := len(out); n > 0 {
			last := &out[n-1]
			end := last.offset + int64(last.length)
			if gap := h.offset - end; last.pack == h.pack && gap >= 0 && gap < packThreshold {
				last.length = uint32(h.offset + int64(h.length) - last.offset)
				continue
			}
		}
		out = append(out, h)
	}
	return out
}

// zeroRange writes zeros over n bytes at off.
func zeroRange(f *os.File, off, n int64) error {
	for n > 0 {
		w, err := f.WriteAt(zeros[:min(int64(len(zeros)), n)], off)
		if err != nil {
			return err
		}
		off, n = off+int64(w), n-int64(w)
	}
	return nil
}
