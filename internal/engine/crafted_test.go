package engine

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	blocks "github.com/ipfs/go-block-format"

	"github.com/umbra-store/umbra/blockstore"
	"github.com/umbra-store/umbra/erasure"
	"github.com/umbra-store/umbra/internal/format"
	"github.com/umbra-store/umbra/internal/seal"
	"github.com/umbra-store/umbra/keyring"
)

// craftReused builds, outside the tree builder, the manifest a hostile
// capability creator could: one chunk of plain, a leaf node naming it
// leafEntries times (each entry claiming size bytes), and levels of interior
// nodes naming the level below fanout times each. Nothing is checked here;
// the reader must cope.
func craftReused(t *testing.T, bs Blocks, plain []byte, size uint64, leafEntries, fanout, levels int) keyring.ReadCap {
	t.Helper()
	ctx := context.Background()
	coder, _ := erasure.New(3, 2)
	ck := keyring.GenerateKey()
	sealed := seal.Seal(nil, ck, plain)
	shards, err := coder.Encode(make([]byte, coder.EncodedLen(len(sealed))), sealed)
	if err != nil {
		t.Fatal(err)
	}
	ent := format.Entry{SealedLen: len(sealed), Key: ck, Size: size}
	for _, sh := range shards {
		b, d := blockstore.NewBlock(bytes.Clone(sh))
		if err := bs.PutMany(ctx, []blocks.Block{b}); err != nil {
			t.Fatal(err)
		}
		ent.Shards = append(ent.Shards, d)
		ent.Hints = append(ent.Hints, format.NoHint)
	}
	n := &format.Node{Level: 0, K: 3, M: 2, Suite: seal.SuiteAES256GCM}
	for range leafEntries {
		n.Entries = append(n.Entries, ent)
		n.Size += ent.Size
	}
	for level := 0; ; level++ {
		key := keyring.GenerateKey()
		raw, err := n.Encode(key)
		if err != nil {
			t.Fatal(err)
		}
		b, d := blockstore.NewBlock(raw)
		if err := bs.PutMany(ctx, []blocks.Block{b}); err != nil {
			t.Fatal(err)
		}
		if level == levels {
			return keyring.NewReadCap(d, key)
		}
		child := format.Entry{Child: d, ChildVKey: key.Derive(keyring.VerifyKeyInfo), Key: key, Size: n.Size}
		n = &format.Node{Level: uint8(level + 1), K: 3, M: 2, Suite: seal.SuiteAES256GCM}
		for range fanout {
			n.Entries = append(n.Entries, child)
			n.Size += child.Size
		}
	}
}

// getWithin runs a Get and fails the test if it has not returned in a
// minute: the attacks below made a reader spin for ever.
func getWithin(t *testing.T, e *Engine, c keyring.ReadCap) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- e.Get(context.Background(), c, &bytes.Buffer{}) }()
	select {
	case err := <-done:
		return err
	case <-time.After(time.Minute): // a hang, not a timing assertion
		t.Fatal("the reader is still walking the crafted manifest")
		return nil
	}
}

// TestCraftedManifestCannotSpinAReader is finding 6 of the hardening review:
// a 2-byte file whose manifest reused nodes of zero-size entries 1000 times
// at each of four levels never finished reading. Zero-size entries are
// refused by the decoder; and a manifest of non-empty entries that names
// more nodes and chunks than its declared size allows stops at the walk's
// budget, with an error that says so.
func TestCraftedManifestCannotSpinAReader(t *testing.T) {
	bs := openStore(t)
	e := New(bs, testSecrets(40))
	t.Run("zero-size entries", func(t *testing.T) {
		// 1000⁴ empty leaf entries above two real bytes.
		c := craftReused(t, bs, nil, 0, 1000, 1000, 3)
		err := getWithin(t, e, c)
		if !errors.Is(err, format.ErrMalformed) {
			t.Fatalf("zero-size entries: %v", err)
		}
	})
	t.Run("reuse beyond the declared size", func(t *testing.T) {
		// One 1-byte chunk named by a leaf, the leaf named 2000 times: a
		// 2000-byte file of 4001 nodes and chunks, where its size allows
		// 64 + 2000/64 = 95. Honest trees are orders of magnitude below
		// (a chunk per MiB, a node per ~1200 chunks).
		c := craftReused(t, bs, []byte{'x'}, 1, 1, 2000, 1)
		err := getWithin(t, e, c)
		if !errors.Is(err, format.ErrMalformed) || !strings.Contains(err.Error(), "more than 95 nodes and chunks") {
			t.Fatalf("reuse beyond the budget: %v", err)
		}
	})
	t.Run("honest deep tree within budget", func(t *testing.T) {
		// The same shape with real sizes a chunker could cut (64 bytes,
		// the smallest test chunker) reads through.
		c := craftReused(t, bs, bytes.Repeat([]byte{'y'}, 64), 64, 30, 30, 1)
		var out bytes.Buffer
		if err := e.Get(context.Background(), c, &out); err != nil || out.Len() != 30*30*64 {
			t.Fatalf("honest tree: %d bytes, %v", out.Len(), err)
		}
	})
}
