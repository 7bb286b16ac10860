package engine

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"

	"github.com/umbra-store/umbra/blockstore"
	"github.com/umbra-store/umbra/erasure"
	"github.com/umbra-store/umbra/internal/format"
	"github.com/umbra-store/umbra/internal/seal"
	"github.com/umbra-store/umbra/keyring"
)

// storeNode encodes n under a fresh key, stores it and returns the entry
// that names it.
func storeNode(t *testing.T, bs Blocks, n *format.Node) format.Entry {
	t.Helper()
	key := keyring.GenerateKey()
	raw, err := n.Encode(key)
	if err != nil {
		t.Fatal(err)
	}
	b, d := blockstore.NewBlock(raw)
	if err := bs.PutMany(context.Background(), []blocks.Block{b}); err != nil {
		t.Fatal(err)
	}
	return format.Entry{Child: d, ChildVKey: key.Derive(keyring.VerifyKeyInfo), Key: key, Size: n.Size}
}

// storeChunk seals plain under a fresh key, codes it k+m, stores the
// shards (named by BLAKE3, as put names them) and returns its entry (no
// hints).
func storeChunk(t *testing.T, bs Blocks, plain []byte, k, m int) format.Entry {
	t.Helper()
	return storeChunkHash(t, bs, plain, k, m, blockstore.BLAKE3)
}

// storeChunkHash is storeChunk with the shards named by h.
func storeChunkHash(t *testing.T, bs Blocks, plain []byte, k, m int, h blockstore.Hash) format.Entry {
	t.Helper()
	return storeChunkWith(t, bs, keyring.GenerateKey(), plain, k, m, h)
}

// storeChunkWith is storeChunkHash sealing under ck.
func storeChunkWith(t *testing.T, bs Blocks, ck keyring.Key, plain []byte, k, m int, h blockstore.Hash) format.Entry {
	t.Helper()
	coder, _ := erasure.New(k, m)
	sealed := seal.Seal(nil, ck, plain)
	shards, err := coder.Encode(make([]byte, coder.EncodedLen(len(sealed))), sealed)
	if err != nil {
		t.Fatal(err)
	}
	ent := format.Entry{SealedLen: len(sealed), Key: ck, Size: uint64(len(plain))}
	for _, sh := range shards {
		b, d := blockstore.NewBlockHash(h, bytes.Clone(sh))
		if err := bs.PutMany(context.Background(), []blocks.Block{b}); err != nil {
			t.Fatal(err)
		}
		ent.Shards = append(ent.Shards, d)
		ent.Hints = append(ent.Hints, format.NoHint)
	}
	return ent
}

// craftReused builds, outside the tree builder, the manifest a hostile
// capability creator could: one chunk of plain, a leaf node naming it
// leafEntries times (each entry claiming size bytes), and levels of interior
// nodes naming the level below fanout times each. Nothing is checked here;
// the reader must cope.
func craftReused(t *testing.T, bs Blocks, plain []byte, size uint64, leafEntries, fanout, levels int) keyring.ReadCap {
	t.Helper()
	ent := storeChunk(t, bs, plain, 3, 2)
	ent.Size = size
	n := &format.Node{Level: 0, K: 3, M: 2, Suite: seal.SuiteAES256GCM}
	for range leafEntries {
		n.Entries = append(n.Entries, ent)
		n.Size += ent.Size
	}
	for level := 0; ; level++ {
		child := storeNode(t, bs, n)
		if level == levels {
			return keyring.NewReadCap(child.Child, child.Key)
		}
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

// TestWalkBudgetCountsNodeBytes is the review's finding on the walk budget:
// it counted nodes, but a node with one entry can be ~266 KiB (a full peer
// table and a 4 KiB name), fetched, hashed and decrypted again at every
// reference: a 153,600-byte file cost a reader 438 MB. Manifest bytes are
// budgeted too, and peer tables are refused above level 0.
func TestWalkBudgetCountsNodeBytes(t *testing.T) {
	bs := openStore(t)
	chunk := storeChunk(t, bs, bytes.Repeat([]byte{'z'}, 64), 1, 0)
	var peers [][]byte
	for i := range format.MaxPeers {
		peers = append(peers, bytes.Repeat([]byte{byte(i), byte(i >> 8)}, 127)[:254])
	}
	name := string(bytes.Repeat([]byte{'n'}, 4000))
	put := func(n *format.Node) format.Entry { return storeNode(t, bs, n) }
	// A leaf as large as allowed, named 2400 times by a root: 153,600 bytes
	// of file, ~640 MB of leaf nodes to read.
	chunk.Hints[0] = 0 // the peer table must be used
	leaf := &format.Node{Level: 0, K: 1, M: 0, Suite: seal.SuiteAES256GCM, Peers: peers, Name: name, Size: 64,
		Entries: []format.Entry{chunk}}
	le := put(leaf)
	root := &format.Node{Level: 1, K: 1, M: 0, Suite: seal.SuiteAES256GCM}
	for range 2400 {
		root.Entries = append(root.Entries, le)
		root.Size += le.Size
	}
	rootEnt := put(root)
	counted := &byteCounter{Blocks: bs}
	e := New(counted, testSecrets(41))
	err := getWithin(t, e, keyring.NewReadCap(rootEnt.Child, rootEnt.Key))
	if !errors.Is(err, format.ErrMalformed) {
		t.Fatalf("a 153,600-byte file naming one large node 2400 times: %v", err)
	}
	// The large node is read once (the walk keeps what it opened), not
	// 2400 times; the walk stops at its budget.
	if read := counted.n.Load(); read > 4<<20 {
		t.Fatalf("the reader read %d bytes of blocks for a 153,600-byte file", read)
	}
	// Distinct large nodes are charged against the bytes budget.
	var distinct []format.Entry
	for i := range 64 {
		l := *leaf
		l.Name = fmt.Sprint(i) + name[len(fmt.Sprint(i)):]
		distinct = append(distinct, put(&l))
	}
	root = &format.Node{Level: 1, K: 1, M: 0, Suite: seal.SuiteAES256GCM}
	for _, d := range distinct {
		root.Entries = append(root.Entries, d)
		root.Size += d.Size
	}
	rootEnt = put(root)
	err = getWithin(t, e, keyring.NewReadCap(rootEnt.Child, rootEnt.Key))
	if !errors.Is(err, format.ErrMalformed) || !strings.Contains(err.Error(), "bytes of manifest nodes") {
		t.Fatalf("a %d-byte file of 64 distinct large nodes: %v", root.Size, err)
	}
	// A peer table above level 0 is refused by the encoder and the decoder.
	mid := &format.Node{Level: 1, K: 1, M: 0, Suite: seal.SuiteAES256GCM, Peers: peers[:1], Size: 64, Entries: []format.Entry{le}}
	if _, err := mid.Encode(keyring.GenerateKey()); !errors.Is(err, format.ErrMalformed) {
		t.Fatalf("peer table at level 1: %v", err)
	}
}

// TestNoReedSolomonCacheGrowth is the review's finding on the erasure
// coders: the library cached, without bound, the inverted matrix of every
// pattern of missing shards, and a crafted file chooses k and which shards
// are missing (4,000 chunks left a reader 96 MiB heavier for good).
func TestNoReedSolomonCacheGrowth(t *testing.T) {
	if testing.Short() {
		t.Skip("4,000 crafted chunks skipped in -short")
	}
	ctx := context.Background()
	bs := openStore(t)
	const k, m, chunks = 128, 3, 4000
	coder, _ := erasure.New(k, m)
	plain := bytes.Repeat([]byte{'c'}, 128)
	ck := keyring.GenerateKey()
	sealed := seal.Seal(nil, ck, plain)
	shards, _ := coder.Encode(make([]byte, coder.EncodedLen(len(sealed))), sealed)
	digests := make([][32]byte, len(shards))
	for i, sh := range shards {
		b, d := blockstore.NewBlockHash(blockstore.BLAKE3, bytes.Clone(sh))
		if err := bs.PutMany(ctx, []blocks.Block{b}); err != nil {
			t.Fatal(err)
		}
		digests[i] = d
	}
	var leaves []format.Entry
	leaf := &format.Node{Level: 0, K: k, M: m, Suite: seal.SuiteAES256GCM}
	flush := func() {
		leaves = append(leaves, storeNode(t, bs, leaf))
		leaf = &format.Node{Level: 0, K: k, M: m, Suite: seal.SuiteAES256GCM}
	}
	for c := range chunks {
		ent := format.Entry{SealedLen: len(sealed), Key: ck, Size: uint64(len(plain)), Shards: slices.Clone(digests)}
		// A different set of three missing data shards for every chunk.
		a, b := c%k, (c/k)%k
		for _, i := range []int{a, (a + 1 + b) % k, (a + 2 + b + c/(k*k)) % k} {
			ent.Shards[i] = sha256.Sum256([]byte{byte(c), byte(c >> 8), byte(i)}) // nobody holds it
		}
		ent.Hints = slices.Repeat([]uint16{format.NoHint}, len(ent.Shards))
		leaf.Entries = append(leaf.Entries, ent)
		leaf.Size += ent.Size
		if len(leaf.Entries) == 50 {
			flush()
		}
	}
	root := &format.Node{Level: 1, K: k, M: m, Suite: seal.SuiteAES256GCM, Entries: leaves}
	for _, l := range leaves {
		root.Size += l.Size
	}
	top := storeNode(t, bs, root)
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapInuse
	}
	before := heap()
	var out bytes.Buffer
	if err := New(bs, testSecrets(42)).Get(ctx, keyring.NewReadCap(top.Child, top.Key), &out); err != nil || out.Len() != chunks*len(plain) {
		t.Fatalf("read %d bytes: %v", out.Len(), err)
	}
	if grew := int64(heap()) - int64(before); grew > 16<<20 {
		t.Fatalf("reading one crafted file left the reader %d MiB heavier for good", grew>>20)
	}
}

// TestHugeDeclaredSizeRefused is the review's finding on sizes: a tree
// (nodes reused) declaring 2^63 bytes or more read as an empty file,
// successfully. No node may declare more than an int64 of bytes.
func TestHugeDeclaredSizeRefused(t *testing.T) {
	bs := openStore(t)
	// 1 MiB chunks, 1000 a leaf, 2400 children a level: the third level up
	// declares 2400³ GiB ≈ 1.4 × 10^19 bytes, past 2^63.
	c := craftReused(t, bs, bytes.Repeat([]byte{'h'}, 1<<20), 1<<20, 1000, 2400, 3)
	e := New(bs, testSecrets(43))
	if _, err := e.Stat(context.Background(), c); !errors.Is(err, format.ErrMalformed) {
		t.Fatalf("stat of a file past 2^63 bytes: %v", err)
	}
	if err := getWithin(t, e, c); !errors.Is(err, format.ErrMalformed) {
		t.Fatalf("get of a file past 2^63 bytes: %v", err)
	}
}

// byteCounter counts the bytes of the blocks the engine reads.
type byteCounter struct {
	Blocks
	n atomic.Int64
}

func (g *byteCounter) Get(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	b, err := g.Blocks.Get(ctx, c)
	if err == nil {
		g.n.Add(int64(len(b.RawData())))
	}
	return b, err
}
