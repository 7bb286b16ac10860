package engine

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"time"

	blocks "github.com/ipfs/go-block-format"

	"github.com/umbra-store/umbra/chunker"
	"github.com/umbra-store/umbra/erasure"
	"github.com/umbra-store/umbra/internal/format"
	"github.com/umbra-store/umbra/internal/seal"
	"github.com/umbra-store/umbra/internal/xfer"
	"github.com/umbra-store/umbra/keyring"
)

// PutOptions tune one Put.
type PutOptions struct {
	K, M      int  // shards per stripe; zero means DefaultK+DefaultM
	RandomKey bool // random chunk and node keys instead of convergent ones
	// AllowFewerPeers lets a networked put go on with fewer than K+1 peers.
	AllowFewerPeers bool
	Name            string // stored in the root's read part; optional
	// Progress, if set, is called with the number of plaintext bytes
	// consumed after each chunk is stored.
	Progress func(n int64)
	// Expiry, if set, ends the leases of every block of the put (unix
	// seconds): past it and the peers' grace the file is gone. 0: the
	// blocks are kept as long as peers allow (blockstore.MaxLeaseTerm).
	Expiry uint64
	// Prior, if set, is an earlier version of the same data (a folder's
	// previous snapshot, maybe another writer's): its chunks that recur,
	// shard for shard, are not placed again (reuse).
	Prior *keyring.ReadCap
}

func (o *PutOptions) shards() (int, int) {
	if o.K == 0 && o.M == 0 {
		return DefaultK, DefaultM
	}
	return o.K, o.M
}

// PutResult describes a stored file.
type PutResult struct {
	Cap      keyring.ReadCap
	Size     uint64
	Chunks   int
	Warnings []string
}

// placed is a chunk's entry with the peer holding each shard (nil: local).
type placed struct {
	ent     format.Entry
	holders [][]byte
}

// flushEvery is how many chunks a networked put stores between durability
// points (about 32 MiB at the default chunk size).
const flushEvery = 32

// durability runs a networked put's durability points: every flushEvery
// chunks the session flushes (peers hold what they acknowledged even if the
// put dies later, and a peer that died is noticed early) while the next
// chunks are stored; the next point waits for it first.
type durability struct {
	sess     PutSession // nil: offline, no points
	flushing chan error
}

// start waits for the previous point and starts the next.
func (d *durability) start(ctx context.Context) error {
	if d.sess == nil {
		return nil
	}
	if err := d.wait(); err != nil {
		return err
	}
	d.flushing = make(chan error, 1)
	go func(done chan<- error) { done <- d.sess.Flush(ctx) }(d.flushing)
	return nil
}

// wait waits for the point in flight, if any.
func (d *durability) wait() error {
	if d.flushing == nil {
		return nil
	}
	err := <-d.flushing
	d.flushing = nil
	return err
}

// chunkIn is a chunk read for storing. buf comes from scratchBufs, sized for
// the chunk's erasure scratch, and the chunk lies at buf[1:]: sealing and
// encoding a one-stripe chunk then happen in place, without copies.
type chunkIn struct {
	buf, data []byte
}

// Put stores the stream r and returns its read capability once every block is
// durable.
func (e *Engine) Put(ctx context.Context, r io.Reader, o PutOptions) (PutResult, error) {
	sess, err := e.newSession(o)
	if err != nil {
		return PutResult{}, err
	}
	res, err := e.put(ctx, r, o, sess)
	if err != nil {
		return PutResult{}, err
	}
	if sess != nil {
		t := time.Now()
		err := sess.Flush(ctx)
		xfer.From(ctx).Time(xfer.Flush, t)
		if err != nil {
			return PutResult{}, err
		}
		res.Warnings = sess.Warnings()
	} else if err := e.bs.Sync(ctx); err != nil {
		return PutResult{}, err
	}
	return res, nil
}

// newSession starts placing a put's blocks: on the network, or in this
// node's store with leases (an offline put with an expiry), or nil (an
// offline put without one).
func (e *Engine) newSession(o PutOptions) (PutSession, error) {
	if o.Expiry == 0 && e.lease > 0 {
		o.Expiry = uint64(time.Now().Add(e.lease).Unix())
	}
	if e.net != nil {
		k, m := o.shards()
		return e.net.NewPutSession(k, m, o.AllowFewerPeers, o.Expiry)
	}
	return e.newLocalSession(o.Expiry), nil
}

// put stores r through sess (a localSession offline; nil: the store
// without leases or durability points) up to its last durability point,
// which the caller runs.
func (e *Engine) put(ctx context.Context, r io.Reader, o PutOptions, sess PutSession) (PutResult, error) {
	k, m := o.shards()
	coder, err := erasure.New(k, m)
	if err != nil {
		return PutResult{}, err
	}
	ck := e.secrets.ChunkerKey()
	ch, err := chunker.New(r, ck.Array(), e.chunkOp...)
	if err != nil {
		return PutResult{}, err
	}
	b := &treeBuilder{e: e, k: k, m: m, random: o.RandomKey, sess: sess}
	b.levels = []*levelNode{{n: &format.Node{Level: 0, K: k, M: m, Suite: seal.SuiteAES256GCM}}}
	b.levels[0].size = format.HeaderSize(b.levels[0].n)
	var done int64
	chunks := 0
	xc := xfer.From(ctx)
	next := func() (chunkIn, error) {
		// The scratch is sized for the chunk cut: a small file's takes
		// no buffer for the largest chunk.
		var buf []byte
		t := time.Now()
		c, err := ch.NextInto(func(n int) []byte {
			buf = scratchBufs.get(coder.EncodedLen(seal.SealedLen(n)))
			return buf[1:]
		})
		xc.Time(xfer.Chunk, t)
		if err != nil {
			if buf != nil {
				scratchBufs.put(buf)
			}
			return chunkIn{}, err
		}
		return chunkIn{buf: buf, data: c.Data}, nil
	}
	prior := e.priorFor(ctx, o, k, m)
	store := func(ctx context.Context, in chunkIn) (placed, error) {
		defer scratchBufs.put(in.buf)
		sc, done, err := e.sealChunk(ctx, coder, in, o.RandomKey)
		if err != nil {
			return placed{}, err
		}
		defer done()
		if p, ok := reuse(prior, sc.ent); ok {
			if p, ok = e.adopt(ctx, coder, sc, p, sess); ok {
				return p, nil
			}
		}
		return e.placeChunk(ctx, coder, sc, sess)
	}
	points := &durability{sess: sess}
	sink := func(p placed) error {
		chunks++
		done += int64(p.ent.Size)
		if o.Progress != nil {
			o.Progress(done)
		}
		if chunks%flushEvery == 0 {
			if err := points.start(ctx); err != nil {
				return err
			}
		}
		return b.add(ctx, 0, p.ent, p.holders)
	}
	if err := ordered(ctx, e.workers, e.window, next, store, sink); err != nil {
		_ = points.wait() // no durability point outlives the put
		return PutResult{}, err
	}
	if err := points.wait(); err != nil {
		return PutResult{}, err
	}
	root, err := b.finish(ctx, o.Name)
	if err != nil {
		return PutResult{}, err
	}
	e.log.Debug("put", "bytes", done, "chunks", chunks, "shards", fmt.Sprintf("%d+%d", k, m))
	return PutResult{Cap: root, Size: uint64(done), Chunks: chunks}, nil
}

// sealedChunk is a chunk sealed and coded: its manifest entry (no hints
// yet) and its shard blocks, cut from the chunk's scratch.
type sealedChunk struct {
	ent format.Entry
	bs  []blocks.Block
}

// sealChunk seals and stripes one chunk. in.buf is the erasure scratch; the
// shards are cut from it. done gives back the sealed buffer, once the
// shards are stored.
func (e *Engine) sealChunk(ctx context.Context, coder *erasure.Coder, in chunkIn, random bool) (sealedChunk, func(), error) {
	data := in.data
	xc := xfer.From(ctx)
	t := time.Now()
	var key keyring.Key
	if random {
		key = keyring.GenerateKey()
	} else {
		key = seal.ConvergentKey(e.secrets.ConvergenceKey(), data)
	}
	sealedLen := seal.SealedLen(len(data))
	var sealed []byte
	done := func() {}
	if len(coder.Layout(sealedLen)) == 1 {
		// One stripe: the sealed chunk is the start of the scratch, where
		// the chunk already lies one byte in (after the suite byte).
		sealed = seal.Seal(in.buf[:sealedLen], key, data)
	} else {
		sbuf := sealedBufs.get(sealedLen)
		done = func() { sealedBufs.put(sbuf) }
		sealed = seal.Seal(sbuf, key, data)
	}
	shards, err := coder.Encode(in.buf, sealed)
	if err != nil {
		done()
		return sealedChunk{}, nil, err
	}
	sc := sealedChunk{
		ent: format.Entry{
			SealedLen: sealedLen,
			Shards:    make([][32]byte, len(shards)),
			Hints:     make([]uint16, len(shards)),
			Key:       key,
			Size:      uint64(len(data)),
		},
		bs: make([]blocks.Block, len(shards)),
	}
	for i, sh := range shards {
		sc.bs[i], sc.ent.Shards[i] = newShardBlock(sh)
		sc.ent.Hints[i] = format.NoHint
	}
	xc.Time(xfer.Seal, t)
	return sc, done, nil
}

// placeChunk stores a sealed chunk's shards through sess (on peers, or in
// the local store offline; nil: the store, without leases) and returns its
// manifest entry and holders.
func (e *Engine) placeChunk(ctx context.Context, coder *erasure.Coder, sc sealedChunk, sess PutSession) (placed, error) {
	xc := xfer.From(ctx)
	defer xc.Time(xfer.Place, time.Now())
	bs := sc.bs
	for range len(bs) / coder.N() {
		xc.Stripe(0)
	}
	if sess == nil {
		if err := e.bs.PutManyDeferred(ctx, bs); err != nil {
			return placed{}, fmt.Errorf("engine: store shards: %w", err)
		}
		return placed{ent: sc.ent}, nil
	}
	holders := make([][]byte, 0, len(bs))
	for s := 0; s < len(bs); s += coder.N() {
		h, err := sess.PlaceStripe(ctx, bs[s:s+coder.N()])
		if err != nil {
			return placed{}, err
		}
		holders = append(holders, h...)
	}
	return placed{ent: sc.ent, holders: holders}, nil
}

type levelNode struct {
	n       *format.Node
	size    int               // plaintext bytes n would encode to
	peerIdx map[string]uint16 // level 0: hint table index of each peer ID
}

// treeBuilder gathers entries into manifest nodes, level by level; memory is
// one node per level.
type treeBuilder struct {
	e      *Engine
	k, m   int
	random bool
	levels []*levelNode
	sess   PutSession
}

// hint turns a chunk's holders into hint indices of the open level-0 node's
// peer table (a full table leaves hints out: retrieval falls back to the
// DHT).
func (b *treeBuilder) hint(p *placed) {
	if len(p.holders) == 0 {
		return
	}
	ln := b.levels[0]
	for i, h := range p.holders {
		if len(h) == 0 || len(h) > 255 {
			continue
		}
		idx, ok := ln.peerIdx[string(h)]
		if !ok {
			if len(ln.n.Peers) >= format.MaxPeers {
				continue
			}
			if ln.peerIdx == nil {
				ln.peerIdx = map[string]uint16{}
			}
			idx = uint16(len(ln.n.Peers))
			ln.peerIdx[string(h)] = idx
			ln.n.Peers = append(ln.n.Peers, h) // its bytes: counted by add
		}
		p.ent.Hints[i] = idx
	}
}

func (b *treeBuilder) add(ctx context.Context, level int, ent format.Entry, holders [][]byte) error {
	for len(b.levels) <= level {
		n := &format.Node{Level: uint8(len(b.levels)), K: b.k, M: b.m, Suite: seal.SuiteAES256GCM}
		b.levels = append(b.levels, &levelNode{n: n, size: format.HeaderSize(n)})
	}
	if level > format.MaxLevel {
		return fmt.Errorf("engine: manifest deeper than %d levels", format.MaxLevel)
	}
	ln := b.levels[level]
	entrySize := func(ln *levelNode) int {
		es := format.EntrySize(uint8(level), len(ent.Shards))
		seen := map[string]bool{}
		for _, h := range holders { // room for peers new to the hint table
			if _, ok := ln.peerIdx[string(h)]; !ok && !seen[string(h)] {
				seen[string(h)] = true
				es += 1 + len(h)
			}
		}
		return es
	}
	es := entrySize(ln)
	if len(ln.n.Entries) > 0 && ln.size+es > b.e.maxNode {
		child, err := b.flush(ctx, level, "")
		if err != nil {
			return err
		}
		if err := b.add(ctx, level+1, child, nil); err != nil {
			return err
		}
		ln = b.levels[level] // flush replaced it
		es = entrySize(ln)   // its hint table starts empty
	}
	if len(holders) > 0 {
		b.hint(&placed{ent: ent, holders: holders})
	}
	ln.n.Entries = append(ln.n.Entries, ent)
	ln.n.Size += ent.Size
	ln.size += es
	return nil
}

// flush stores the node at level, resets the level and returns the entry that
// points at the stored node.
func (b *treeBuilder) flush(ctx context.Context, level int, name string) (format.Entry, error) {
	ln := b.levels[level]
	n := ln.n
	n.Name = name
	var key keyring.Key
	if b.random {
		key = keyring.GenerateKey()
	} else {
		vp, rp, err := n.Plaintext()
		if err != nil {
			return format.Entry{}, err
		}
		h := sha256.New()
		h.Write(vp)
		h.Write(rp)
		key = b.e.secrets.ConvergenceKey().MAC([]byte("umbra node v1"), h.Sum(nil))
	}
	block, err := n.Encode(key)
	if err != nil {
		return format.Entry{}, err
	}
	blk, digest := newNodeBlock(block)
	if b.sess != nil {
		err = b.sess.Replicate(ctx, blk)
	} else {
		err = b.e.bs.PutManyDeferred(ctx, []blocks.Block{blk})
	}
	if err != nil {
		return format.Entry{}, fmt.Errorf("engine: store manifest: %w", err)
	}
	ent := format.Entry{Child: digest, ChildVKey: key.Derive(keyring.VerifyKeyInfo), Key: key, Size: n.Size}
	fresh := &format.Node{Level: n.Level, K: b.k, M: b.m, Suite: seal.SuiteAES256GCM}
	b.levels[level] = &levelNode{n: fresh, size: format.HeaderSize(fresh)}
	return ent, nil
}

// finish flushes every level bottom-up; the top node becomes the root.
func (b *treeBuilder) finish(ctx context.Context, name string) (keyring.ReadCap, error) {
	for level := 0; ; level++ {
		if level == len(b.levels)-1 {
			ent, err := b.flush(ctx, level, name)
			if err != nil {
				return keyring.ReadCap{}, err
			}
			return keyring.NewReadCap(ent.Child, ent.Key), nil
		}
		ent, err := b.flush(ctx, level, "")
		if err != nil {
			return keyring.ReadCap{}, err
		}
		if err := b.add(ctx, level+1, ent, nil); err != nil {
			return keyring.ReadCap{}, err
		}
	}
}
