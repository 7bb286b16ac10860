package engine

import (
	"context"
	"io"
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
// K, M and AllowFewerPeers; each Put's own are ignored).
func (e *Engine) NewBatch(o PutOptions) (*Batch, error) {
	b := &Batch{e: e, o: o}
	if e.net != nil {
		k, m := o.shards()
		var err error
		if b.sess, err = e.net.NewPutSession(k, m, o.AllowFewerPeers); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// Put stores r; it is durable once Flush returns.
func (b *Batch) Put(ctx context.Context, r io.Reader, o PutOptions) (PutResult, error) {
	o.K, o.M, o.AllowFewerPeers = b.o.K, b.o.M, b.o.AllowFewerPeers
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

// PutFiles stores each of files as a file of its own, in one batch, and
// returns their results once all are durable.
func (e *Engine) PutFiles(ctx context.Context, o PutOptions, files []io.Reader) ([]PutResult, error) {
	b, err := e.NewBatch(o)
	if err != nil {
		return nil, err
	}
	out := make([]PutResult, len(files))
	for i, f := range files {
		if out[i], err = b.Put(ctx, f, PutOptions{}); err != nil {
			return nil, err
		}
	}
	if _, err := b.Flush(ctx); err != nil {
		return nil, err
	}
	return out, nil
}
