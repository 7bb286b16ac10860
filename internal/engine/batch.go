package engine

import (
	"context"
	"fmt"
	"io"

	blocks "github.com/ipfs/go-block-format"
	"golang.org/x/sync/errgroup"

	"github.com/umbra-store/umbra/blockstore"
	"github.com/umbra-store/umbra/keyring"
)

// Batch stores several files with one durability point for all of them:
// a file's own put makes every holder sync, which for small files costs
// more than storing them. Its Put returns a file's capability before the
// file is durable; Flush makes every file put so far durable, and no
// capability should be handed on (published in a folder) before it
// returned. Puts may run concurrently.
type Batch struct {
	e    *Engine
	o    PutOptions
	sess PutSession // nil: offline
}

// NewBatch starts a batch whose files are coded and placed as o says (its
// K, M, AllowFewerPeers and Expiry; each Put's own are ignored).
func (e *Engine) NewBatch(o PutOptions) (*Batch, error) {
	b := &Batch{e: e, o: o}
	var err error
	b.sess, err = e.newSession(o)
	return b, err
}

// Put stores r; it is durable once Flush returns.
func (b *Batch) Put(ctx context.Context, r io.Reader, o PutOptions) (PutResult, error) {
	o.K, o.M, o.AllowFewerPeers, o.Expiry = b.o.K, b.o.M, b.o.AllowFewerPeers, b.o.Expiry
	return b.e.put(ctx, r, o, b.sess)
}

// Flush returns once every file put so far is durable, with what the user
// should know of the placement.
func (b *Batch) Flush(ctx context.Context) ([]string, error) {
	if b.sess == nil {
		return nil, b.e.bs.Sync(ctx)
	}
	if err := b.sess.Flush(ctx); err != nil {
		return nil, err
	}
	return b.sess.Warnings(), nil
}

// BatchPuts is how many files of a batch are sealed and sent at once:
// small files leave cores idle one at a time.
const BatchPuts = 8

// PutFiles stores each of files as a file of its own, in one batch
// (BatchPuts at once), and returns their results once all are durable.
func (e *Engine) PutFiles(ctx context.Context, o PutOptions, files []io.Reader) ([]PutResult, error) {
	b, err := e.NewBatch(o)
	if err != nil {
		return nil, err
	}
	out := make([]PutResult, len(files))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(BatchPuts)
	for i, f := range files {
		g.Go(func() (err error) {
			out[i], err = b.Put(gctx, f, PutOptions{})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if _, err := b.Flush(ctx); err != nil {
		return nil, err
	}
	return out, nil
}

// localSession stores an offline put in this node's store, each block
// under a lease of this node's: until the put's expiry, or for ever.
type localSession struct {
	bs     Blocks
	lease  blockstore.Lease
	leases keyring.Key
}

func (e *Engine) newLocalSession(expiry uint64) *localSession {
	return &localSession{bs: e.bs, lease: blockstore.Lease{Expiry: expiry}, leases: e.secrets.LeaseKey()}
}

func (s *localSession) put(ctx context.Context, bs []blocks.Block) error {
	ls := make([]blockstore.Lease, len(bs))
	for i, b := range bs {
		ls[i] = s.lease
		ls[i].Hash = keyring.RenewHash(keyring.RenewSecret(s.leases, b.Cid().Hash(), nil))
	}
	by := blockstore.ByStore
	if s.lease.Expiry == 0 {
		by = blockstore.Forever
	}
	if err := s.bs.PutLeased(ctx, bs, ls, by); err != nil {
		return fmt.Errorf("engine: store shards: %w", err)
	}
	return nil
}

func (s *localSession) PlaceStripe(ctx context.Context, shards []blocks.Block) ([][]byte, error) {
	return make([][]byte, len(shards)), s.put(ctx, shards)
}

// Adopt stores the shards here under this put's lease, as PlaceStripe
// does: a held block only takes the lease.
func (s *localSession) Adopt(ctx context.Context, shards []blocks.Block, _ [][]byte) bool {
	return s.put(ctx, shards) == nil
}

func (s *localSession) Replicate(ctx context.Context, b blocks.Block) error {
	return s.put(ctx, []blocks.Block{b})
}

func (s *localSession) Flush(ctx context.Context) error { return s.bs.Sync(ctx) }
func (s *localSession) Warnings() []string              { return nil }
