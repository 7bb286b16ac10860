package blockstore

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Garbage collection frees a deleted block's bytes at once: once the
// index deletion is committed (synced), the block's record (header and
// data) is punched out of its pack (fallocate PUNCH_HOLE: the filesystem
// frees the blocks and the range reads as zeros; where that fails, zeros
// are written over it), and the pack synced. Expired shards are then gone
// from the pack files without copying a byte of the live records around
// them; compaction is left to packs that are mostly dead. A record is
// punched only if its header still names the block and its length. A
// crash between the commit and the punch leaves the dead bytes until the
// pack is compacted; blocks under packThreshold live in the index
// (Pebble) and leave with its own compactions.
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
	in    [2]int        // reads in flight by the parity of the generation they entered
	drain sync.Mutex    // one drain at a time
	reads atomic.Uint64 // reads ever entered: a pacer's sign of load (pace.go)
}

func newReadGate() *readGate {
	g := &readGate{}
	g.left = sync.NewCond(&g.mu)
	return g
}

// enter registers a read; the ticket is for leave.
func (g *readGate) enter() uint64 {
	g.reads.Add(1)
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

// hole is a deleted block's record: where its data lies, and its key.
type hole struct {
	loc location
	mh  []byte
}

// holeOf returns the record of the block mh whose index value was v.
func holeOf(mh []byte, v []byte) (hole, bool) {
	loc, ok := decodeLocation(v)
	return hole{loc: loc, mh: mh}, ok
}

// span is a byte range of a pack to free: whole records, headers included.
type span struct {
	pack       uint32
	start, end int64
}

// zeros is what is written over a range a filesystem cannot punch.
var zeros = make([]byte, 256<<10)

// punch frees the records of holes (deleted blocks whose index entries
// are gone, the reads that could have found them drained), headers
// included, and syncs the packs it changed. A record is punched only if
// its header still names the block and its length: an index entry that
// outlived its bytes (a crash) must not free what now lies there. The
// packs are held as if read meanwhile, so that a compaction does not close
// one under it. pace, if not nil, paces the punches (pace.go); a punch
// cut short by ctx leaves the rest of the bytes to compaction.
func (p *packs) punch(ctx context.Context, holes []hole, pace *pacer) error {
	files := map[uint32]*os.File{}
	var ids []uint32
	p.mu.Lock()
	for _, h := range holes {
		if f := p.files[h.loc.pack]; f != nil && files[h.loc.pack] == nil {
			files[h.loc.pack] = f
			ids = append(ids, h.loc.pack)
		}
	}
	p.hold(ids)
	p.mu.Unlock()
	defer p.unhold(ids)
	var spans []span
	for _, h := range holes {
		f := files[h.loc.pack]
		start := h.loc.offset - 5 - int64(len(h.mh))
		if f == nil || start < packHeader || len(h.mh) > 255 {
			continue
		}
		hdr := make([]byte, 5+len(h.mh))
		if _, err := f.ReadAt(hdr, start); err != nil ||
			binary.BigEndian.Uint32(hdr) != h.loc.length || int(hdr[4]) != len(h.mh) || !bytes.Equal(hdr[5:], h.mh) {
			continue // not this block's record (any more)
		}
		spans = append(spans, span{h.loc.pack, start, h.loc.offset + int64(h.loc.length)})
	}
	var first error
	note := func(err error) {
		if first == nil {
			first = err
		}
	}
	merged := mergeSpans(spans)
spans:
	for si, sp := range merged {
		f := files[sp.pack]
		for off := sp.start; off < sp.end; off += punchPiece {
			n := min(punchPiece, sp.end-off)
			if err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n); err != nil {
				// A file system that cannot punch (or failed to): zeros.
				if err := zeroRange(f, off, n); err != nil {
					note(fmt.Errorf("blockstore: free a deleted block: %w", err))
					break // this span; the others still go
				}
			}
			if si == len(merged)-1 && off+n >= sp.end {
				break // the last piece: nothing left to pace
			}
			if err := pace.wait(ctx, int(n)); err != nil {
				note(err)
				break spans // cut short: the rest is left to compaction
			}
		}
	}
	for _, f := range files {
		if err := unix.Fdatasync(int(f.Fd())); err != nil && first == nil {
			first = fmt.Errorf("blockstore: sync pack: %w", err)
		}
	}
	return first
}

// mergeSpans sorts spans and joins those that touch: a file's shards lie
// one after another, and one punch frees them all.
func mergeSpans(spans []span) []span {
	ss := slices.Clone(spans)
	slices.SortFunc(ss, func(a, b span) int {
		if a.pack != b.pack {
			return cmp.Compare(a.pack, b.pack)
		}
		return cmp.Compare(a.start, b.start)
	})
	var out []span
	for _, sp := range ss {
		if n := len(out); n > 0 && out[n-1].pack == sp.pack && sp.start <= out[n-1].end {
			out[n-1].end = max(out[n-1].end, sp.end)
			continue
		}
		out = append(out, sp)
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
