package engine

import (
	"bytes"
	"context"
	"sync/atomic"
	"testing"

	blocks "github.com/ipfs/go-block-format"

	"github.com/umbra-store/umbra/internal/randstream"
)

// putCounter counts the blocks written.
type putCounter struct {
	Blocks
	n atomic.Int64
}

func (p *putCounter) PutManyDeferred(ctx context.Context, bs []blocks.Block) error {
	p.n.Add(int64(len(bs)))
	return p.Blocks.PutManyDeferred(ctx, bs)
}

// TestPutReusesPrior: a second version with one edit in the middle, put
// with the first as Prior, stores only the chunks around the edit, and
// reads back right; a prior under other shards is not used.
func TestPutReusesPrior(t *testing.T) {
	ctx := context.Background()
	pc := &putCounter{Blocks: openStore(t)}
	e := New(pc, testSecrets(9))
	v1 := randstream.Bytes(9, 24<<20)
	r1, err := e.Put(ctx, bytes.NewReader(v1), PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	full := pc.n.Load()
	v2 := bytes.Clone(v1)
	copy(v2[12<<20:], "an edit in the middle of the second version")
	pc.n.Store(0)
	r2, err := e.Put(ctx, bytes.NewReader(v2), PutOptions{Prior: &r1.Cap})
	if err != nil {
		t.Fatal(err)
	}
	if again := pc.n.Load(); again*4 > full {
		t.Fatalf("a one-edit version wrote %d blocks, the first %d", again, full)
	}
	var got bytes.Buffer
	if err := e.Get(ctx, r2.Cap, &got); err != nil || !bytes.Equal(got.Bytes(), v2) {
		t.Fatalf("second version reads back wrong: %v", err)
	}
	// The same result as a put without the prior: the same capability.
	r3, err := e.Put(ctx, bytes.NewReader(v2), PutOptions{})
	if err != nil || !r3.Cap.Equal(r2.Cap) {
		t.Fatalf("with and without prior differ: %v", err)
	}
	pc.n.Store(0)
	if _, err := e.Put(ctx, bytes.NewReader(v2), PutOptions{K: 2, M: 1, Prior: &r1.Cap}); err != nil {
		t.Fatal(err)
	}
	if pc.n.Load() < full/2 {
		t.Fatal("a prior of other shards was reused")
	}
}

func TestChunks(t *testing.T) {
	ctx := context.Background()
	e := New(openStore(t), testSecrets(3))
	data := randstream.Bytes(3, 9<<20)
	r, err := e.Put(ctx, bytes.NewReader(data), PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sizes, err := e.Chunks(ctx, r.Cap)
	if err != nil {
		t.Fatal(err)
	}
	var sum uint64
	for _, s := range sizes {
		sum += s
	}
	if len(sizes) != r.Chunks || sum != uint64(len(data)) {
		t.Fatalf("%d chunks summing to %d; put made %d of %d bytes", len(sizes), sum, r.Chunks, len(data))
	}
}
