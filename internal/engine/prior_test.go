package engine

import (
	"bytes"
	"context"
	"sync/atomic"
	"testing"

	blocks "github.com/ipfs/go-block-format"

	"github.com/umbra-store/umbra/blockstore"
	"github.com/umbra-store/umbra/internal/format"
	"github.com/umbra-store/umbra/internal/randstream"
	"github.com/umbra-store/umbra/internal/seal"
	"github.com/umbra-store/umbra/keyring"
)

// putCounter counts the blocks a (fake) network put places: fakeSession
// stores them with PutMany.
type putCounter struct {
	Blocks
	n atomic.Int64
}

func (p *putCounter) PutMany(ctx context.Context, bs []blocks.Block) error {
	p.n.Add(int64(len(bs)))
	return p.Blocks.PutMany(ctx, bs)
}

// TestPutReusesPrior: a second version with one edit in the middle, put
// with the first as Prior, places only the chunks around the edit (the
// others are adopted where they are), and reads back right; a prior under
// other shards is not used. (Offline there is nothing to save: a put
// never writes a block the store holds.)
func TestPutReusesPrior(t *testing.T) {
	ctx := context.Background()
	pc := &putCounter{Blocks: openStore(t)}
	e := New(pc, testSecrets(9), WithNetwork(&fakeNet{bs: pc}))
	v1 := randstream.Bytes(9, 24<<20)
	r1, err := e.Put(ctx, bytes.NewReader(v1), PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	full := pc.n.Load()
	if full < 20*5 {
		t.Fatalf("a 24 MiB put placed %d blocks", full)
	}
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

// TestForgedPriorNotReused is an attack by a co-writer of a shared folder,
// whose last snapshot (written by the attacker) is the prior of the
// victim's next put. The attacker has read the victim's chunk keys (from
// the victim's earlier version) and names, under the key of the victim's
// first chunk, shards of other plaintext sealed with that key: the AEAD
// accepts them. The victim's put must not reuse that entry: its new version
// reads back as what it put.
func TestForgedPriorNotReused(t *testing.T) {
	ctx := context.Background()
	bs := openStore(t)
	e := New(bs, testSecrets(11))
	v1 := randstream.Bytes(11, 3<<20)
	r1, err := e.Put(ctx, bytes.NewReader(v1), PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ents := leafEntries(t, e, r1.Cap)
	if len(ents) < 2 {
		t.Fatalf("%d chunks, want several", len(ents))
	}
	// The attacker's prior: the victim's entries, the first one forged.
	forged := storeChunkWith(t, bs, ents[0].Key, bytes.Repeat([]byte("forged! "), int(ents[0].Size)/8+1)[:ents[0].Size], 3, 2, blockstore.BLAKE3)
	n := &format.Node{Level: 0, K: 3, M: 2, Suite: seal.SuiteAES256GCM}
	n.Entries = append([]format.Entry{forged}, ents[1:]...)
	for _, ent := range n.Entries {
		n.Size += ent.Size
	}
	root := storeNode(t, bs, n)
	prior := keyring.NewReadCap(root.Child, root.Key)
	var out bytes.Buffer
	if err := e.Get(ctx, prior, &out); err != nil || bytes.Equal(out.Bytes()[:64], v1[:64]) {
		t.Fatalf("the forged prior does not read as forged: %v", err)
	}
	v2 := bytes.Clone(v1)
	copy(v2[len(v2)-100:], "the victim's edit at the end")
	r2, err := e.Put(ctx, bytes.NewReader(v2), PutOptions{Prior: &prior})
	if err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := e.Get(ctx, r2.Cap, &out); err != nil || !bytes.Equal(out.Bytes(), v2) {
		t.Fatalf("the victim's new version reads back wrong (forged chunk reused): %v", err)
	}
}
