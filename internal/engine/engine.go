package engine

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"sync"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"

	"github.com/umbra-store/umbra/blockstore"
	"github.com/umbra-store/umbra/chunker"
	"github.com/umbra-store/umbra/internal/format"
	"github.com/umbra-store/umbra/keyring"
)

// Defaults.
const (
	DefaultK = 3
	DefaultM = 2
)

// Errors.
var (
	// ErrNotFound is returned by Get, ReadRange and Stat when the file's root
	// block (or a manifest node under it) is not in the store.
	ErrNotFound = errors.New("engine: file not found in the store")
	// ErrCorrupt is returned when a chunk cannot be authenticated even after
	// dropping shards that fail their hash check.
	ErrCorrupt = errors.New("engine: data failed authentication")
	// ErrRange is returned by ReadRange for a negative offset or length.
	ErrRange = errors.New("engine: invalid range")
)

// Blocks is what the engine needs of a block store. PutMany (and
// PutManyDeferred) must not keep the blocks' byte slices after returning: the
// engine reuses its shard buffers.
type Blocks interface {
	Get(context.Context, cid.Cid) (blocks.Block, error)
	Has(context.Context, cid.Cid) (bool, error)
	PutMany(context.Context, []blocks.Block) error
	DeleteBlock(context.Context, cid.Cid) error
}

// deferredBlocks is implemented by stores that can batch durability: writes
// made with PutManyDeferred are durable after Sync.
type deferredBlocks interface {
	PutManyDeferred(context.Context, []blocks.Block) error
	Sync(context.Context) error
}

// Network places shards on peers and fetches blocks from them. Without one,
// the engine works on its local block store alone.
type Network interface {
	// NewPutSession starts placing one file's shards with k+m coding.
	NewPutSession(k, m int, allowFewerPeers bool) (PutSession, error)
	// Fetch returns a block whose bytes match c, from the local store or
	// from peers (hint, if set, is the peer ID that should hold it), or an
	// error satisfying ipld.IsNotFound. A shallow fetch asks only the local
	// store and the hinted peer; a deep one also searches the DHT and asks
	// every connected peer.
	//
	// INVARIANT: Fetch hashes what every source gives it (the local store
	// included) against c before returning it, and goes on to the next
	// source on a mismatch, avoiding the peer that sent it. The engine does
	// not hash fetched blocks again: GCM is not key-committing, so the
	// chunk's AEAD alone would let a key holder forge content.
	Fetch(ctx context.Context, c cid.Cid, hint []byte, deep bool) ([]byte, error)
}

// releaser is a Network that reuses the bytes of fetched blocks the engine
// is done with.
type releaser interface{ Release([]byte) }

// PutSession places the blocks of one put.
type PutSession interface {
	// PlaceStripe stores one stripe's shards, on distinct peers where it
	// can, and returns the peer ID holding each.
	PlaceStripe(ctx context.Context, shards []blocks.Block) ([][]byte, error)
	// Replicate stores a manifest block on several peers.
	Replicate(ctx context.Context, b blocks.Block) error
	// Flush returns once every block placed in the session is durable.
	Flush(ctx context.Context) error
	// Warnings are things the user should know (shards doubled up …).
	Warnings() []string
}

// Engine stores and reads files in a block store.
type Engine struct {
	bs      Blocks
	secrets keyring.Secrets
	log     *slog.Logger
	workers int
	window  int
	chunkOp []chunker.Option
	maxNode int // manifest node plaintext limit; tests lower it
	net     Network

	setWorkers bool
}

// netWorkers is the default worker count with a network.
const netWorkers = 4

// WithNetwork makes puts place shards on peers and gets fetch from them.
func WithNetwork(n Network) Option { return func(e *Engine) { e.net = n } }

// Option configures an Engine.
type Option func(*Engine)

// WithLogger sets the logger. Default: discard.
func WithLogger(l *slog.Logger) Option { return func(e *Engine) { e.log = l } }

// WithWorkers sets how many chunks are sealed or opened at once. Default:
// GOMAXPROCS+1 (one more than the cores, to hide I/O waits).
func WithWorkers(n int) Option {
	return func(e *Engine) {
		if n > 0 {
			e.workers, e.setWorkers = n, true
		}
	}
}

// WithChunkerOptions passes options to the chunker (tests use small sizes).
// Changing chunk sizes changes convergent output.
func WithChunkerOptions(o ...chunker.Option) Option {
	return func(e *Engine) { e.chunkOp = append(e.chunkOp, o...) }
}

// New returns an engine over bs with the user's secrets.
func New(bs Blocks, secrets keyring.Secrets, opts ...Option) *Engine {
	e := &Engine{
		bs:      bs,
		secrets: secrets,
		log:     slog.New(slog.DiscardHandler),
		workers: runtime.GOMAXPROCS(0) + 1, // one more than cores: hide I/O waits
		maxNode: format.MaxNodePlain,
	}
	for _, o := range opts {
		o(e)
	}
	if e.net != nil && !e.setWorkers {
		// Over the network a worker mostly waits for peers: keep more
		// chunks in flight than cores.
		e.workers = max(e.workers, netWorkers)
	}
	e.window = 2 * e.workers
	return e
}

// String keeps the engine's secrets out of %v.
func (e *Engine) String() string { return "engine" }

// shardCID makes the CID of a shard or node block from its SHA-256 digest.
func shardCID(digest [32]byte) cid.Cid { return blockstore.CIDOf(digest) }

// RootCID returns the CID of a capability's root block.
func RootCID(c keyring.Cap) cid.Cid { return shardCID(c.Root()) }

func newBlock(data []byte) (blocks.Block, [32]byte) { return blockstore.NewBlock(data) }

func (e *Engine) putDeferred(ctx context.Context, bs []blocks.Block) error {
	if d, ok := e.bs.(deferredBlocks); ok {
		return d.PutManyDeferred(ctx, bs)
	}
	return e.bs.PutMany(ctx, bs)
}

func (e *Engine) sync(ctx context.Context) error {
	if d, ok := e.bs.(deferredBlocks); ok {
		return d.Sync(ctx)
	}
	return nil
}

// getBlock returns the block whose SHA-256 is digest, checked against it:
// through the network (which checks every source, see Network.Fetch), or
// read from the local store and hashed here. A stored block that fails
// (the pack's CRC or the digest) is reported as blockstore.ErrHashMismatch.
func (e *Engine) getBlock(ctx context.Context, digest [32]byte, hint []byte, deep bool) ([]byte, error) {
	if e.net != nil {
		return e.net.Fetch(ctx, shardCID(digest), hint, deep)
	}
	b, err := e.bs.Get(ctx, shardCID(digest))
	if err != nil {
		return nil, err
	}
	if sha256.Sum256(b.RawData()) != digest {
		return nil, fmt.Errorf("%w: %x…", blockstore.ErrHashMismatch, digest[:6])
	}
	return b.RawData(), nil
}

func isNotFound(err error) bool { return ipld.IsNotFound(err) }

// bufPool hands out byte slices of at least a given size. Unlike a
// sync.Pool it survives garbage collections: under a memory limit the GC runs
// often, and a pool emptied each time costs a fresh, zeroed multi-MiB
// allocation per chunk.
type bufPool struct{ free chan []byte }

func newBufPool(n int) *bufPool { return &bufPool{free: make(chan []byte, n)} }

func (bp *bufPool) get(n int) []byte {
	select {
	case b := <-bp.free:
		if cap(b) >= n {
			return b[:n]
		}
	default:
	}
	return make([]byte, n)
}

func (bp *bufPool) put(b []byte) {
	select {
	case bp.free <- b[:0]:
	default: // full: let the GC have it
	}
}

// Free lists sized for the default window; more in flight simply allocates.
var (
	sealedBufs  = newBufPool(8) // sealed chunks
	scratchBufs = newBufPool(8) // erasure scratch (all shards of a chunk)
)

// ordered runs fn on items from next with e.workers goroutines and hands the
// results to sink in input order, with at most e.window items in flight.
// next returns io.EOF when done. The first error stops everything.
func ordered[In, Out any](ctx context.Context, workers, window int,
	next func() (In, error), fn func(context.Context, In) (Out, error), sink func(Out) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	type job struct {
		seq int
		in  In
	}
	type res struct {
		seq int
		out Out
	}
	jobs := make(chan job)
	results := make(chan res, window)
	tokens := make(chan struct{}, window)
	fail := func(err error) { cancel(err) }

	go func() { // producer
		defer close(jobs)
		for seq := 0; ; seq++ {
			select {
			case tokens <- struct{}{}:
			case <-ctx.Done():
				return
			}
			in, err := next()
			if err == io.EOF {
				return
			}
			if err != nil {
				fail(err)
				return
			}
			select {
			case jobs <- job{seq, in}:
			case <-ctx.Done():
				return
			}
		}
	}()
	var wwg sync.WaitGroup
	for range workers {
		wwg.Add(1)
		go func() {
			defer wwg.Done()
			for {
				var j job
				select {
				case jj, ok := <-jobs:
					if !ok {
						return
					}
					j = jj
				case <-ctx.Done():
					return
				}
				out, err := fn(ctx, j.in)
				if err != nil {
					fail(err)
					return
				}
				select {
				case results <- res{j.seq, out}:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	// NB: results closes when the workers are done, without waiting for the
	// producer: a producer blocked in next (reading a terminal, say) must not
	// keep a cancelled call from returning. It exits on its own later.
	go func() { wwg.Wait(); close(results) }()

	pending := map[int]Out{}
	want := 0
	for r := range results {
		if ctx.Err() != nil {
			continue
		}
		pending[r.seq] = r.out
		for {
			out, ok := pending[want]
			if !ok {
				break
			}
			delete(pending, want)
			want++
			if err := sink(out); err != nil {
				fail(err)
				break
			}
			<-tokens
		}
	}
	if err := context.Cause(ctx); err != nil {
		return err
	}
	return nil
}
