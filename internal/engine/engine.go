package engine

import (
	"context"
	"io"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"time"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"

	"github.com/umbra-store/umbra/blockstore"
	"github.com/umbra-store/umbra/chunker"
	"github.com/umbra-store/umbra/internal/format"
	"github.com/umbra-store/umbra/internal/kind"
	"github.com/umbra-store/umbra/internal/xfer"
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
	// block (or a manifest node under it) is not in the store, or no peer
	// holds a shard of a chunk: the file expired (its leases ended and the
	// peers collected it), or never was.
	ErrNotFound = kind.New(kind.NotFound, "engine: file expired or not found")
	// ErrCorrupt is returned when a chunk cannot be authenticated even after
	// dropping shards that fail their hash check.
	ErrCorrupt = kind.New(kind.Corrupt, "engine: data failed authentication")
	// ErrRange is returned by ReadRange for a negative offset or length.
	ErrRange = kind.New(kind.Usage, "engine: invalid range")
)

// Blocks is what the engine needs of a block store. Writes made with
// PutManyDeferred are durable after Sync; PutMany's at once. The Put calls
// must not keep the blocks' byte slices after returning: the engine reuses
// its shard buffers.
type Blocks interface {
	Get(context.Context, cid.Cid) (blocks.Block, error)
	Has(context.Context, cid.Cid) (bool, error)
	PutMany(context.Context, []blocks.Block) error
	PutManyDeferred(context.Context, []blocks.Block) error
	Sync(context.Context) error
	DeleteBlock(context.Context, cid.Cid) error
	PutLeased(ctx context.Context, bs []blocks.Block, ls []blockstore.Lease, by blockstore.LeaseBy) error
}

var _ Blocks = (*blockstore.Store)(nil)

// Network places shards on peers and fetches blocks from them. Without one,
// the engine works on its local block store alone.
type Network interface {
	// NewPutSession starts placing one file's shards with k+m coding,
	// each under a lease until expiry (unix seconds; 0: none).
	NewPutSession(k, m int, allowFewerPeers bool, expiry uint64) (PutSession, error)
	// Fetch returns a block of at most size bytes whose bytes match c, from
	// the local store or from peers (hint, if set, is the peer ID that
	// should hold it), or an error satisfying ipld.IsNotFound. Nothing
	// larger than size is read into memory: the manifest says how large
	// each shard is, and a peer must not make a reader hold more. A shallow fetch asks only the local
	// store and the hinted peer; a deep one also searches the DHT and asks
	// every connected peer.
	//
	// INVARIANT: Fetch hashes what every source gives it (the local store
	// included) against c before returning it, and goes on to the next
	// source on a mismatch, avoiding the peer that sent it. The engine does
	// not hash fetched blocks again: GCM is not key-committing, so the
	// chunk's AEAD alone would let a key holder forge content.
	//
	// A block of exactly len(into) bytes may be read into into (the
	// engine's own buffer, where the block is used) and returned there;
	// into is written only while Fetch runs (one source at a time) and
	// holds unchecked bytes after a failure. Such a block is not
	// Released.
	Fetch(ctx context.Context, c cid.Cid, size int, hint []byte, deep bool, into []byte) ([]byte, error)
	// Release gives back the bytes of a fetched block the engine is done
	// with, for reuse.
	Release([]byte)
}

// PutSession places the blocks of one put.
type PutSession interface {
	// PlaceStripe stores one stripe's shards, on distinct peers where it
	// can, and returns the peer ID holding each.
	PlaceStripe(ctx context.Context, shards []blocks.Block) ([][]byte, error)
	// Adopt gives this put's lease to a stripe's shards where a manifest
	// (a prior version's) says they are held, and reports whether every
	// holder took it; if not, the stripe is placed with PlaceStripe.
	Adopt(ctx context.Context, shards []blocks.Block, holders [][]byte) bool
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
	lease   time.Duration // how long a put's leases run; 0: no expiry

	setWorkers bool
	nodes      nodeCache // opened manifest nodes
}

// netWorkers is the default worker count with a network.
const netWorkers = 4

// WithNetwork makes puts place shards on peers and gets fetch from them.
func WithNetwork(n Network) Option { return func(e *Engine) { e.net = n } }

// Option configures an Engine.
type Option func(*Engine)

// WithLeaseLength makes every put's leases run for d (a put's own
// PutOptions.Expiry wins). Default 0: no expiry.
func WithLeaseLength(d time.Duration) Option { return func(e *Engine) { e.lease = d } }

// WithLogger sets the logger. Default: discard.
func WithLogger(l *slog.Logger) Option { return func(e *Engine) { e.log = l } }

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

// newNodeBlock makes the block of an encoded manifest node: named by its
// SHA-256.
func newNodeBlock(data []byte) (blocks.Block, [32]byte) { return blockstore.NewBlock(data) }

// newShardBlock makes the block of a shard: named by its BLAKE3, the
// function of the manifest version put writes (format.Version).
func newShardBlock(data []byte) (blocks.Block, [32]byte) {
	return blockstore.NewBlockHash(blockstore.BLAKE3, data)
}

// shardHash is the function that names the shards of leaf n, as its
// version gives it (format.ShardBLAKE3 or format.ShardSHA256, the only
// values the decoder sets).
func shardHash(n *format.Node) blockstore.Hash {
	if n.ShardHash == format.ShardSHA256 {
		return blockstore.SHA256
	}
	return blockstore.BLAKE3
}

// The format package names the functions by their multihash codes.
var _ = [1]struct{}{}[format.ShardBLAKE3-uint64(blockstore.BLAKE3)+format.ShardSHA256-uint64(blockstore.SHA256)]

// getNode returns the manifest node block whose SHA-256 is digest (getBlock).
func (e *Engine) getNode(ctx context.Context, digest [32]byte) ([]byte, error) {
	return e.getBlock(ctx, blockstore.CIDOf(digest), format.MaxNodeBlock, nil, true, nil)
}

// getBlock returns the block c names, checked against it: through the
// network (which checks every source, see Network.Fetch), or read from the
// local store (its pack CRC left to this hash) and hashed here. A stored
// block that fails is reported as blockstore.ErrHashMismatch. A local read
// goes into `into` when given (a block of another length is refused), into
// a pooled buffer otherwise.
func (e *Engine) getBlock(ctx context.Context, c cid.Cid, size int, hint []byte, deep bool, into []byte) ([]byte, error) {
	if e.net != nil {
		return e.net.Fetch(ctx, c, size, hint, deep, into)
	}
	var data []byte
	if g, ok := e.bs.(intoGetter); ok {
		// Read into a pooled buffer (given back by release), and never
		// more than the manifest says the block holds.
		var err error
		data, err = g.GetIntoUnchecked(ctx, c, func(n int) []byte {
			if n > size || (into != nil && n != len(into)) {
				return nil
			}
			if into != nil {
				return into
			}
			return blockBufs.get(n)
		})
		if err != nil {
			return nil, err
		}
	} else {
		b, err := e.bs.Get(ctx, c)
		if err != nil {
			return nil, err
		}
		data = b.RawData()
	}
	if err := blockstore.Verify(c, data); err != nil {
		if into == nil {
			e.release(data)
		}
		return nil, err
	}
	xfer.From(ctx).Received(true)
	return data, nil
}

// intoGetter is a block store that reads a block into a buffer of the
// caller's, leaving the check to the caller's hash
// (blockstore.Store.GetIntoUnchecked).
type intoGetter interface {
	GetIntoUnchecked(ctx context.Context, c cid.Cid, get func(n int) []byte) ([]byte, error)
}

// release gives back the bytes of a block getBlock returned, once unused.
func (e *Engine) release(b []byte) {
	if e.net != nil {
		e.net.Release(b)
		return
	}
	if _, ok := e.bs.(intoGetter); ok {
		blockBufs.put(b)
	}
}

func isNotFound(err error) bool { return ipld.IsNotFound(err) }

// bufPool hands out byte slices of at least a given size from a free list
// bounded in bytes. Unlike a sync.Pool it survives garbage collections: under
// a memory limit the GC runs often, and a pool emptied each time costs a
// fresh, zeroed multi-MiB allocation per chunk. A slice handed out is the
// best fit among the free ones of at most twice the size asked (chunks vary
// from 256 KiB to 4 MiB); new ones are made in steps of bufStep, so that
// chunks of nearby sizes share them. Beyond max free bytes the oldest go.
type bufPool struct {
	mu   sync.Mutex
	free [][]byte // oldest first
	held int      // bytes (capacity) in free
	max  int
}

// bufStep rounds the capacity of new pooled slices up.
const bufStep = 64 << 10

func newBufPool(max int) *bufPool { return &bufPool{max: max} }

// fits reports whether a free slice of capacity c may serve n bytes.
func fits(c, n int) bool { return c >= n && c <= 2*n+bufStep }

func (bp *bufPool) get(n int) []byte {
	bp.mu.Lock()
	best := -1
	for i, b := range bp.free {
		if fits(cap(b), n) && (best < 0 || cap(b) < cap(bp.free[best])) {
			best = i
		}
	}
	if best >= 0 {
		b := bp.free[best]
		bp.free = slices.Delete(bp.free, best, best+1)
		bp.held -= cap(b)
		bp.mu.Unlock()
		return b[:n]
	}
	bp.mu.Unlock()
	return make([]byte, n, (n+bufStep-1)/bufStep*bufStep)
}

func (bp *bufPool) put(b []byte) {
	if cap(b) > bp.max {
		return // let the GC have it
	}
	bp.mu.Lock()
	bp.free = append(bp.free, b[:0])
	bp.held += cap(b)
	for bp.held > bp.max {
		bp.held -= cap(bp.free[0])
		bp.free = slices.Delete(bp.free, 0, 1)
	}
	bp.mu.Unlock()
}

// Free lists sized for the default window; more in flight simply allocates.
var (
	sealedBufs  = newBufPool(32 << 20) // sealed chunks
	blockBufs   = newBufPool(16 << 20) // shards read from the local store (no network)
	scratchBufs = newBufPool(48 << 20) // erasure scratch (all shards of a chunk)
)

// ordered runs fn on items from next with workers goroutines and hands the
// results to sink in input order, with at most window items in flight.
// next returns io.EOF when done. The first error stops everything.
func ordered[In, Out any](ctx context.Context, workers, window int,
	next func() (In, error), fn func(context.Context, In) (Out, error), sink func(Out) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	p := &pool[In, Out]{ctx: ctx, fail: func(err error) { cancel(err) },
		jobs: make(chan job[In]), results: make(chan result[Out], window), tokens: make(chan struct{}, window)}
	go p.produce(next)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() { defer wg.Done(); p.work(fn) }()
	}
	// NB: results closes when the workers are done, without waiting for the
	// producer: a producer blocked in next (reading a terminal, say) must not
	// keep a cancelled call from returning. It exits on its own later.
	go func() { wg.Wait(); close(p.results) }()
	p.drain(sink)
	if err := context.Cause(ctx); err != nil {
		return err
	}
	return nil
}

type job[In any] struct {
	seq int
	in  In
}

type result[Out any] struct {
	seq int
	out Out
}

// pool is one run of ordered: a producer takes a token per item (window of
// them), workers process items, drain hands results on in order and gives
// each token back once its item is consumed.
type pool[In, Out any] struct {
	ctx     context.Context
	fail    func(error)
	jobs    chan job[In]
	results chan result[Out]
	tokens  chan struct{}
}

func (p *pool[In, Out]) produce(next func() (In, error)) {
	defer close(p.jobs)
	for seq := 0; ; seq++ {
		select {
		case p.tokens <- struct{}{}:
		case <-p.ctx.Done():
			return
		}
		in, err := next()
		if err == io.EOF {
			return
		}
		if err != nil {
			p.fail(err)
			return
		}
		select {
		case p.jobs <- job[In]{seq, in}:
		case <-p.ctx.Done():
			return
		}
	}
}

func (p *pool[In, Out]) work(fn func(context.Context, In) (Out, error)) {
	for {
		var j job[In]
		select {
		case jj, ok := <-p.jobs:
			if !ok {
				return
			}
			j = jj
		case <-p.ctx.Done():
			return
		}
		out, err := fn(p.ctx, j.in)
		if err != nil {
			p.fail(err)
			return
		}
		select {
		case p.results <- result[Out]{j.seq, out}:
		case <-p.ctx.Done():
			return
		}
	}
}

// drain hands results to sink in input order until results closes.
func (p *pool[In, Out]) drain(sink func(Out) error) {
	pending := map[int]Out{}
	want := 0
	for r := range p.results {
		if p.ctx.Err() != nil {
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
				p.fail(err)
				break
			}
			<-p.tokens
		}
	}
}
