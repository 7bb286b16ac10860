package engine

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"

	"github.com/umbra-store/umbra/blockstore"
	"github.com/umbra-store/umbra/chunker"
	"github.com/umbra-store/umbra/internal/format"
	"github.com/umbra-store/umbra/keyring"
)

func fmtKM(k, m int) string { return fmt.Sprintf("%d+%d", k, m) }

// getCounter counts block reads.
type getCounter struct {
	Blocks
	n atomic.Int64
}

func (g *getCounter) Get(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	g.n.Add(1)
	return g.Blocks.Get(ctx, c)
}

// faultyBlocks serves chosen blocks with one bit flipped until they are
// written again.
type faultyBlocks struct {
	Blocks
	mu    sync.Mutex
	bad   map[cid.Cid]bool
	first bool // flip the first byte instead of the middle one
}

func (f *faultyBlocks) corrupt(c cid.Cid) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.bad == nil {
		f.bad = map[cid.Cid]bool{}
	}
	f.bad[c] = true
}

func (f *faultyBlocks) isCorrupt(c cid.Cid) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.bad[c]
}

func (f *faultyBlocks) Get(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	b, err := f.Blocks.Get(ctx, c)
	if err != nil || !f.isCorrupt(c) {
		return b, err
	}
	d := append([]byte(nil), b.RawData()...)
	if f.first {
		d[0] ^= 1
	} else {
		d[len(d)/2] ^= 1
	}
	return blocks.NewBlockWithCid(d, c)
}

// GetIntoUnchecked flips the same bit, so that the engine's pooled reads
// from a local store meet the fault too.
func (f *faultyBlocks) GetIntoUnchecked(ctx context.Context, c cid.Cid, get func(n int) []byte) ([]byte, error) {
	d, err := f.Blocks.(intoGetter).GetIntoUnchecked(ctx, c, get)
	if err != nil || !f.isCorrupt(c) {
		return d, err
	}
	if f.first {
		d[0] ^= 1
	} else {
		d[len(d)/2] ^= 1
	}
	return d, nil
}

// PutMany clears the fault of the blocks it wrote, once the store took
// them: a failed write (ErrFull at a quota) leaves them corrupt, so that
// a test checking isCorrupt sees a repair that did not happen.
func (f *faultyBlocks) PutMany(ctx context.Context, bs []blocks.Block) error {
	if err := f.Blocks.PutMany(ctx, bs); err != nil {
		return err
	}
	f.mu.Lock()
	for _, b := range bs {
		delete(f.bad, b.Cid())
	}
	f.mu.Unlock()
	return nil
}

// leafEntries returns every level-0 entry of a file, in order.
func leafEntries(t testing.TB, e *Engine, c keyring.ReadCap) []format.Entry {
	t.Helper()
	var out []format.Entry
	var walk func(digest [32]byte, key keyring.Key)
	walk = func(digest [32]byte, key keyring.Key) {
		n, err := e.openNode(context.Background(), digest, key)
		if err != nil {
			t.Fatal(err)
		}
		for _, ent := range n.Entries {
			if n.Level == 0 {
				out = append(out, ent)
			} else {
				walk(ent.Child, ent.Key)
			}
		}
	}
	walk(c.Root(), c.ReadKey())
	return out
}

func withMaxNode(n int) Option { return func(e *Engine) { e.maxNode = n } }

// withChunker passes options to the chunker (small sizes make many chunks
// of a small file). Changing chunk sizes changes convergent output.
func withChunker(o ...chunker.Option) Option {
	return func(e *Engine) { e.chunkOp = append(e.chunkOp, o...) }
}

// fakeNet is a Network over one local store whose fetches can be made to
// fail per block, and per pass (shallow or deep). A "corrupt" block is
// served by its source with a flipped bit; like Net.Fetch, the fake checks
// what it receives against the CID, notes the bad source and reports the
// block as not found.
type fakeNet struct {
	bs            Blocks
	mu            sync.Mutex
	corrupt       map[cid.Cid]bool // served with a flipped bit
	shallowMissed map[cid.Cid]bool // found only by a deep fetch
	gone          map[cid.Cid]bool // found by nobody
	slow          map[cid.Cid]bool // shallow fetches hang until cancelled
	reported      []cid.Cid
}

type fakeSession struct{ bs Blocks }

func (s fakeSession) PlaceStripe(ctx context.Context, shards []blocks.Block) ([][]byte, error) {
	return make([][]byte, len(shards)), s.bs.PutMany(ctx, shards)
}
func (s fakeSession) Adopt(ctx context.Context, shards []blocks.Block, _ [][]byte) bool {
	for _, b := range shards {
		if ok, err := s.bs.Has(ctx, b.Cid()); !ok || err != nil {
			return false
		}
	}
	return true
}

func (s fakeSession) Replicate(ctx context.Context, b blocks.Block) error {
	return s.bs.PutMany(ctx, []blocks.Block{b})
}
func (fakeSession) Flush(context.Context) error { return nil }
func (fakeSession) Warnings() []string          { return nil }

func (f *fakeNet) NewPutSession(int, int, bool, uint64) (PutSession, error) {
	return fakeSession{f.bs}, nil
}

func (f *fakeNet) Release([]byte) {}

// Fetch reads a block of into's length into into, as the network's does:
// a corrupt one is written there too before it fails its hash.
func (f *fakeNet) Fetch(ctx context.Context, c cid.Cid, _ int, _ []byte, deep bool, into []byte) ([]byte, error) {
	f.mu.Lock()
	gone, missed, bad, slow := f.gone[c], f.shallowMissed[c] && !deep, f.corrupt[c], f.slow[c] && !deep
	f.mu.Unlock()
	if slow {
		<-ctx.Done() // a holder that never answers
		return nil, ctx.Err()
	}
	if gone || missed {
		return nil, ipld.ErrNotFound{Cid: c}
	}
	b, err := f.bs.Get(ctx, c)
	if err != nil {
		return nil, err
	}
	d := append([]byte(nil), b.RawData()...)
	if len(d) == len(into) {
		d = into[:copy(into, d)]
	}
	if bad {
		d[0] ^= 1
	}
	if blockstore.Verify(c, d) != nil {
		f.mu.Lock()
		f.reported = append(f.reported, c)
		f.mu.Unlock()
		return nil, ipld.ErrNotFound{Cid: c}
	}
	return d, nil
}
