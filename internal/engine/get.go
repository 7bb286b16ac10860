package engine

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	blocks "github.com/ipfs/go-block-format"

	"github.com/umbra-store/umbra/blockstore"
	"github.com/umbra-store/umbra/erasure"
	"github.com/umbra-store/umbra/internal/format"
	"github.com/umbra-store/umbra/internal/seal"
	"github.com/umbra-store/umbra/internal/xfer"
	"github.com/umbra-store/umbra/keyring"
)

// FileInfo describes a stored file.
type FileInfo struct {
	Size  uint64
	Name  string
	K, M  int
	Depth int // manifest tree levels above the chunks
}

func (e *Engine) openNode(ctx context.Context, digest [32]byte, readKey keyring.Key) (*format.Node, error) {
	n, _, err := e.openNodeSize(ctx, digest, readKey)
	return n, err
}

// openNodeSize is openNode, also returning the block's size. Opened nodes
// are kept (nodeCache): ranged reads of one file (a mount reads a chunk at
// a time) open its root and interior nodes again and again.
func (e *Engine) openNodeSize(ctx context.Context, digest [32]byte, readKey keyring.Key) (*format.Node, int, error) {
	var id [64]byte
	copy(id[:32], digest[:])
	copy(id[32:], readKey.Bytes())
	if n, size, ok := e.nodes.get(id); ok {
		return n, size, nil
	}
	n, size, err := e.fetchNode(ctx, digest, readKey)
	if err == nil {
		e.nodes.put(id, n, size)
	}
	return n, size, err
}

func (e *Engine) fetchNode(ctx context.Context, digest [32]byte, readKey keyring.Key) (*format.Node, int, error) {
	raw, err := e.getNode(ctx, digest)
	if isNotFound(err) {
		return nil, 0, fmt.Errorf("%w: manifest block %x… is not in the store", ErrNotFound, digest[:6])
	}
	if err != nil {
		return nil, 0, err
	}
	if sha256.Sum256(raw) != digest {
		return nil, 0, fmt.Errorf("%w: manifest block %x… does not match its hash", ErrCorrupt, digest[:6])
	}
	n, err := format.Open(raw, readKey)
	return n, len(raw), err
}

// Stat returns what the root of a file says about it.
func (e *Engine) Stat(ctx context.Context, c keyring.ReadCap) (FileInfo, error) {
	n, err := e.openNode(ctx, c.Root(), c.ReadKey())
	if err != nil {
		return FileInfo{}, err
	}
	return FileInfo{Size: n.Size, Name: n.Name, K: n.K, M: n.M, Depth: int(n.Level)}, nil
}

// Get writes the whole file to w.
func (e *Engine) Get(ctx context.Context, c keyring.ReadCap, w io.Writer) error {
	return e.ReadRange(ctx, c, 0, -1, w)
}

// chunkJob is one chunk to fetch, with the part of its plaintext wanted.
type chunkJob struct {
	index    int // chunk number in the file, for errors
	k, m     int
	peers    [][]byte        // the leaf node's hint table
	hash     blockstore.Hash // the leaf's shard digests' function
	ent      format.Entry
	from, to int // plaintext bytes [from, to) of the chunk
	// Set by fetchChunk: the chunk's stripes, and the buffer it is sealed
	// (then opened) in, into which data shards are read where they belong
	// (inPlace).
	lay []erasure.Stripe
	dst []byte
}

// inPlace returns the bytes of j.dst that data shard i fills, when it is
// read there: nil for a parity shard, without a j.dst, or for the last data
// shard of a stripe followed by another, whose fill would spill over the
// next stripe's first bytes.
func (j chunkJob) inPlace(i int) []byte {
	if j.dst == nil {
		return nil
	}
	n := j.k + j.m
	si, x := i/n, i%n
	if x >= j.k || si >= len(j.lay) {
		return nil
	}
	s := j.lay[si]
	at, end := s.Offset+x*s.ShardSize, s.Offset+(x+1)*s.ShardSize
	if (end > s.Offset+s.Length && si != len(j.lay)-1) || end > cap(j.dst) {
		return nil
	}
	return j.dst[at:end:end]
}

// isIn reports whether b lies in j.dst where inPlace(i) puts shard i.
func (j chunkJob) isIn(i int, b []byte) bool {
	t := j.inPlace(i)
	return t != nil && len(b) > 0 && &b[0] == &t[0]
}

// ChunkTaker is a writer that can take the plaintext of a chunk whole,
// buffer and all, rather than have it copied: a reader in this process
// that keeps chunks (a mount's cache). A chunk taken is the taker's, who
// may give its buffer back with ReleaseChunk once no longer used.
type ChunkTaker interface {
	// TakeChunk takes the plaintext b, lying in buf, or, returning false,
	// leaves it to be written.
	TakeChunk(b, buf []byte) bool
}

// ReleaseChunk gives back the buffer of a chunk a ChunkTaker took, for
// reuse: nothing may use it afterwards.
func (e *Engine) ReleaseChunk(buf []byte) { sealedBufs.put(buf) }

// ReadRange writes length bytes of the file starting at off to w; length < 0
// means to the end. Only the chunks (and their stripes) that cover the range
// are fetched.
func (e *Engine) ReadRange(ctx context.Context, c keyring.ReadCap, off, length int64, w io.Writer) error {
	if off < 0 {
		return fmt.Errorf("%w: offset %d", ErrRange, off)
	}
	root, err := e.openNode(ctx, c.Root(), c.ReadKey())
	if err != nil {
		return err
	}
	size := int64(root.Size)
	end := size
	if length >= 0 && length < size-off { // no overflow: off ≥ 0, size ≥ 0
		end = off + length
	}
	if off >= end {
		return nil
	}
	jobs := make(chan chunkJob)
	walkErr := make(chan error, 1)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		defer close(jobs)
		w := &walker{e: e, jobs: jobs, off: off, end: end, budget: walkBudget(root.Size), nodeBytes: nodeBytesBudget(root.Size), size: root.Size}
		walkErr <- w.walk(wctx, root, 0)
	}()
	next := func() (chunkJob, error) {
		j, ok := <-jobs
		if !ok {
			if err := <-walkErr; err != nil {
				return j, err
			}
			return j, io.EOF
		}
		return j, nil
	}
	fetch := func(ctx context.Context, j chunkJob) (openChunk, error) {
		return e.fetchChunk(ctx, j)
	}
	xc := xfer.From(ctx)
	taker, _ := w.(ChunkTaker)
	sink := func(c openChunk) error {
		t := time.Now()
		if taker != nil && taker.TakeChunk(c.plain, c.buf) {
			xc.Time(xfer.Write, t)
			return nil // the buffer is the taker's now
		}
		_, err := w.Write(c.plain)
		xc.Time(xfer.Write, t)
		sealedBufs.put(c.buf)
		return err
	}
	err = ordered(ctx, e.workers, e.window, next, fetch, sink)
	cancel()
	for range jobs { // let the walker finish
	}
	return err
}

// walkBudget bounds the work of one walk over a file of size bytes: the
// manifest nodes opened plus the chunks fetched. Every entry holds at least
// one byte (the decoder refuses empty ones), so an honest tree never comes
// near it (the chunker cuts chunks of 256 KiB and more, test chunkers of
// 64 bytes and more); a crafted one that reuses nodes to name far more
// chunks than its size allows is stopped with an error instead of spinning.
func walkBudget(size uint64) int64 { return 64 + int64(size/64) }

// nodeBytesBudget bounds the manifest bytes one walk fetches, hashes and
// decrypts. Honest trees take about 0.02 % of the file with umbra's
// chunker, and at most ~140× it with 64-byte test chunks at k+m = 256 (an
// entry of 34 bytes per shard for 64 bytes of file). A node named again is
// not read again (the walker keeps the last nodes it opened), so what a
// crafted tree costs beyond this is nodes its maker had to store.
func nodeBytesBudget(size uint64) int64 { return 4<<20 + 256*int64(min(size, 1<<54)) }

// nodeCacheLen is how many opened nodes a walk keeps: a crafted tree that
// names one large node again and again costs one fetch.
const nodeCacheLen = 16

// walker sends, in file order, the chunks of a tree that overlap [off, end).
type walker struct {
	e         *Engine
	jobs      chan<- chunkJob
	off, end  int64
	idx       int // chunk number in the file, for errors
	budget    int64
	nodeBytes int64 // manifest bytes left to fetch
	size      uint64
	cache     map[[64]byte]*format.Node // digest ‖ key → opened node
	cached    [][64]byte                // in the order opened, for eviction
}

// open opens a child node, from the walk's cache when it was opened
// before with the same key, charging the bytes fetched to the budget.
func (w *walker) open(ctx context.Context, digest [32]byte, key keyring.Key) (*format.Node, error) {
	var id [64]byte
	copy(id[:32], digest[:])
	copy(id[32:], key.Bytes())
	if n, ok := w.cache[id]; ok {
		return n, nil
	}
	n, size, err := w.e.openNodeSize(ctx, digest, key)
	if err != nil {
		return nil, err
	}
	if w.nodeBytes -= int64(size); w.nodeBytes < 0 {
		return nil, fmt.Errorf("%w: more than %d bytes of manifest nodes for a file of %d bytes (a crafted manifest?)", format.ErrMalformed, nodeBytesBudget(w.size), w.size)
	}
	if w.cache == nil {
		w.cache = map[[64]byte]*format.Node{}
	}
	if len(w.cached) == nodeCacheLen {
		delete(w.cache, w.cached[0])
		w.cached = w.cached[1:]
	}
	w.cache[id] = n
	w.cached = append(w.cached, id)
	return n, nil
}

// spend counts one node opened or chunk fetched against the budget.
func (w *walker) spend() error {
	if w.budget--; w.budget < 0 {
		return fmt.Errorf("%w: more than %d nodes and chunks for a file of %d bytes (a crafted manifest?)", format.ErrMalformed, walkBudget(w.size), w.size)
	}
	return nil
}

// walk sends the chunks of node n, which starts at file offset base.
func (w *walker) walk(ctx context.Context, n *format.Node, base int64) error {
	pos := base
	for _, ent := range n.Entries {
		lo, hi := pos, pos+int64(ent.Size)
		pos = hi
		if hi <= w.off {
			if n.Level == 0 {
				w.idx++
			}
			continue
		}
		if lo >= w.end {
			return nil
		}
		if err := w.spend(); err != nil {
			return err
		}
		if n.Level == 0 {
			j := chunkJob{index: w.idx, k: n.K, m: n.M, peers: n.Peers, hash: shardHash(n), ent: ent, from: int(max(w.off-lo, 0)), to: int(min(w.end, hi) - lo)}
			w.idx++
			select {
			case w.jobs <- j:
			case <-ctx.Done():
				return ctx.Err()
			}
			continue
		}
		child, err := w.open(ctx, ent.Child, ent.Key)
		if err != nil {
			return err
		}
		if child.Size != ent.Size || int(child.Level) != int(n.Level)-1 {
			return fmt.Errorf("%w: manifest node %x… disagrees with its parent", ErrCorrupt, ent.Child[:6])
		}
		if err := w.walk(ctx, child, lo); err != nil {
			return err
		}
	}
	return nil
}

// openChunk is the wanted plaintext of a chunk, decrypted in place in buf
// (from sealedBufs, which takes it back once plain is written).
type openChunk struct {
	buf, plain []byte
}

// fetchChunk fetches, rebuilds and opens one chunk.
func (e *Engine) fetchChunk(ctx context.Context, j chunkJob) (openChunk, error) {
	coder, err := erasure.New(j.k, j.m)
	if err != nil {
		return openChunk{}, err
	}
	lay := coder.Layout(j.ent.SealedLen)
	// The chunk is decoded and opened in sealed. Data shards are read
	// straight into it, from the local store or a peer (no copy on
	// decode): its capacity reaches the end of the last stripe's last data
	// shard.
	last := lay[len(lay)-1]
	sealed := sealedBufs.get(max(j.ent.SealedLen, last.Offset+coder.K()*last.ShardSize))[:j.ent.SealedLen]
	j.lay, j.dst = lay, sealed
	shards := make([][]byte, len(j.ent.Shards))
	xc := xfer.From(ctx)
	start := time.Now()
	refused, err := e.fetchStripes(ctx, j, coder, lay, shards)
	if err != nil {
		sealedBufs.put(sealed)
		return openChunk{}, err
	}
	xc.Time(xfer.Fetch, start)
	if len(refused) > 0 {
		// Before the chunk opens: shards read in place turn to plaintext.
		e.rewrite(ctx, coder, j, shards, refused)
	}
	plain, err := e.openShards(xc, coder, j, shards, sealed)
	for i, sh := range shards {
		if sh != nil && !j.isIn(i, sh) {
			e.release(sh)
		}
	}
	if err != nil {
		sealedBufs.put(sealed)
		return openChunk{}, err
	}
	// plain lies inside sealed: Decode writes into it, Open decrypts in place.
	return openChunk{buf: sealed, plain: plain[j.from:j.to]}, nil
}

// fetchStripes fetches k shards of each stripe into shards and returns
// those the store holds but refused as corrupt. Data shards first (no
// decoding when they all come). A data shard that fails, or lags far
// behind the first to arrive (hedging), is covered by the next parity
// shard. This pass asks only where each shard should be (local store,
// hinted peer): a dead holder costs no search when parity can stand in.
// Only then are the DHT and bitswap searched for the rest.
func (e *Engine) fetchStripes(ctx context.Context, j chunkJob, coder *erasure.Coder, lay []erasure.Stripe, shards [][]byte) ([]int, error) {
	n := coder.N()
	var refused []int // shards the store holds but refused as corrupt
	var mu sync.Mutex
	xc := xfer.From(ctx)
	// fetchAll fetches the shards at idxs at once until enough of them
	// came (the searches for the others are cancelled: a shard nobody
	// holds any more costs a whole DHT and bitswap search otherwise).
	fetchAll := func(idxs []int, deep bool, enough int) {
		fctx, cancel := context.WithCancel(ctx)
		defer cancel()
		var wg sync.WaitGroup
		got := 0
		for _, i := range idxs {
			xc.Asked(false, deep)
			wg.Add(1)
			go func() {
				defer wg.Done()
				ok, corrupt := e.fetchShard(fctx, j, shards, i, lay[i/n].ShardSize, deep)
				mu.Lock()
				defer mu.Unlock()
				if corrupt {
					refused = append(refused, i)
				}
				if ok {
					if got++; got >= enough {
						cancel()
					}
				}
			}()
		}
		wg.Wait()
	}
	for si := range lay {
		have := e.shallowStripe(ctx, j, coder, si, shards, &refused, &mu)
		if have < coder.K() {
			var rest []int
			for i := 0; i < n; i++ {
				if shards[si*n+i] == nil {
					rest = append(rest, si*n+i)
				}
			}
			fetchAll(rest, true, coder.K()-have)
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	return refused, nil
}

// rewrite rebuilds the shards at idxs from the others and stores them again
// (repair on read). Failures are logged: the read itself has succeeded.
func (e *Engine) rewrite(ctx context.Context, coder *erasure.Coder, j chunkJob, shards [][]byte, idxs []int) {
	for _, i := range idxs {
		shards[i] = nil
	}
	if err := coder.Rebuild(shards, j.ent.SealedLen); err != nil {
		e.log.Warn("repair: rebuild failed", "chunk", j.index, "err", err)
		return
	}
	var fixed []blocks.Block
	for _, i := range idxs {
		b, d := blockstore.NewBlockHash(j.hash, append([]byte(nil), shards[i]...))
		if d != j.ent.Shards[i] {
			continue // rebuilt shard disagrees with the manifest: leave it
		}
		_ = e.bs.DeleteBlock(ctx, b.Cid())
		fixed = append(fixed, b)
	}
	if len(fixed) == 0 {
		return
	}
	if err := e.bs.PutMany(ctx, fixed); err != nil {
		e.log.Warn("repair write failed", "chunk", j.index, "err", err)
		return
	}
	e.log.Info("repaired shards", "chunk", j.index, "count", len(fixed))
}

func (e *Engine) openShards(xc *xfer.Counters, coder *erasure.Coder, j chunkJob, shards [][]byte, sealed []byte) ([]byte, error) {
	n, k := coder.N(), coder.K()
	for i, sh := range shards {
		// A shard of the wrong size is corrupt; treat it as missing.
		if sh != nil && len(sh) != coder.Layout(j.ent.SealedLen)[i/n].ShardSize {
			shards[i] = nil
		}
	}
	decoding := false
	for si := 0; si < len(shards)/n; si++ {
		xc.Stripe(k)
		for i := si * n; i < si*n+k; i++ {
			if shards[i] == nil {
				xc.Decoded()
				decoding = true
				break
			}
		}
	}
	// Decode on a copy of the slice: it fills missing data shards with
	// rebuilt ones, which a later repair must not mistake for fetched data.
	t := time.Now()
	data, err := coder.Decode(sealed, append([][]byte(nil), shards...), j.ent.SealedLen)
	if decoding {
		xc.Time(xfer.Decode, t)
	}
	t = time.Now()
	defer xc.Time(xfer.Open, t)
	if se := (*erasure.StripeError)(nil); errors.As(err, &se) && se.Have == 0 {
		return nil, fmt.Errorf("%w: chunk %d: %w", ErrNotFound, j.index, err)
	}
	if err != nil {
		return nil, fmt.Errorf("engine: chunk %d: %w", j.index, err)
	}
	plain, err := seal.Open(data[1:1], j.ent.Key, data)
	if err != nil {
		// Every shard used matched the digest its manifest names, so the
		// manifest itself is wrong for this chunk (or the key is).
		return nil, fmt.Errorf("%w: chunk %d does not open under its key, though every shard matches its digest: %w", ErrCorrupt, j.index, err)
	}
	if len(plain) != int(j.ent.Size) {
		return nil, fmt.Errorf("%w: chunk %d is %d bytes, manifest says %d", ErrCorrupt, j.index, len(plain), j.ent.Size)
	}
	return plain, nil
}
