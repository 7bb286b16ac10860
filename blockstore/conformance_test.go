package blockstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	boxobs "github.com/ipfs/boxo/blockstore"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	ipld "github.com/ipfs/go-ipld-format"
	mh "github.com/multiformats/go-multihash"
)

// conformance is one suite for every boxo blockstore.Blockstore; it runs on
// ours and on boxo's in-memory store, so ours behaves as boxo code expects.
func conformance(t *testing.T, open func(t *testing.T) boxobs.Blockstore) {
	ctx := context.Background()
	sizes := []int{0, 1, 1000, packThreshold - 1, packThreshold, 2 << 20}
	mk := func(i, n int) blocks.Block {
		d := make([]byte, n)
		for j := range d {
			d[j] = byte(i*7 + j)
		}
		if n > 0 {
			d[0] = byte(i)
		}
		return rawBlock(append(d, byte(i), byte(n)))
	}
	t.Run("PutGetHasSize", func(t *testing.T) {
		bs := open(t)
		for i, n := range sizes {
			b := mk(i, n)
			if err := bs.Put(ctx, b); err != nil {
				t.Fatal(err)
			}
			got, err := bs.Get(ctx, b.Cid())
			if err != nil || string(got.RawData()) != string(b.RawData()) || !got.Cid().Equals(b.Cid()) {
				t.Fatalf("size %d: get %v", n, err)
			}
			if ok, err := bs.Has(ctx, b.Cid()); !ok || err != nil {
				t.Fatalf("size %d: has %v %v", n, ok, err)
			}
			if sz, err := bs.GetSize(ctx, b.Cid()); sz != len(b.RawData()) || err != nil {
				t.Fatalf("size %d: GetSize %d %v", n, sz, err)
			}
		}
	})
	t.Run("Missing", func(t *testing.T) {
		bs := open(t)
		c := mk(99, 10).Cid()
		if _, err := bs.Get(ctx, c); !ipld.IsNotFound(err) {
			t.Fatalf("get missing: %v", err)
		}
		if ok, err := bs.Has(ctx, c); ok || err != nil {
			t.Fatalf("has missing: %v %v", ok, err)
		}
		if _, err := bs.GetSize(ctx, c); !ipld.IsNotFound(err) {
			t.Fatalf("size missing: %v", err)
		}
		if err := bs.DeleteBlock(ctx, c); err != nil && !ipld.IsNotFound(err) {
			t.Fatalf("delete missing: %v", err)
		}
	})
	t.Run("PutManyDeleteAllKeys", func(t *testing.T) {
		bs := open(t)
		var bl []blocks.Block
		for i := 0; i < 20; i++ {
			bl = append(bl, mk(i, i*5000))
		}
		if err := bs.PutMany(ctx, bl); err != nil {
			t.Fatal(err)
		}
		if err := bs.DeleteBlock(ctx, bl[3].Cid()); err != nil {
			t.Fatal(err)
		}
		ch, err := bs.AllKeysChan(ctx)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for c := range ch {
			seen[string(c.Hash())] = true
		}
		if len(seen) != 19 || seen[string(bl[3].Cid().Hash())] || !seen[string(bl[4].Cid().Hash())] {
			t.Fatalf("AllKeysChan saw %d keys", len(seen))
		}
		if _, err := bs.Get(ctx, bl[3].Cid()); !ipld.IsNotFound(err) {
			t.Fatalf("deleted block: %v", err)
		}
	})
}

func TestConformancePebble(t *testing.T) {
	conformance(t, func(t *testing.T) boxobs.Blockstore {
		s, err := Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestConformanceBoxoMemory(t *testing.T) {
	conformance(t, func(t *testing.T) boxobs.Blockstore {
		return boxobs.NewBlockstore(dssync.MutexWrap(ds.NewMapDatastore()))
	})
}

func TestPutRejectsWrongHash(t *testing.T) {
	s := openT(t, t.TempDir())
	good := rawBlock([]byte("hello"))
	bad, _ := blocks.NewBlockWithCid([]byte("hellO"), good.Cid())
	for name, put := range map[string]func() error{
		"Put":             func() error { return s.Put(context.Background(), bad) },
		"PutMany":         func() error { return s.PutMany(context.Background(), []blocks.Block{good, bad}) },
		"PutManyDeferred": func() error { return s.PutManyDeferred(context.Background(), []blocks.Block{bad}) },
	} {
		if err := put(); !errors.Is(err, ErrHashMismatch) {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if ok, _ := s.Has(context.Background(), good.Cid()); ok {
		t.Fatal("a batch with one bad block was partly written")
	}
	// Other hash functions are refused outright (TestOnlyUmbraCIDs).
	h, _ := mh.Sum([]byte("x"), mh.SHA2_512, -1)
	b512, _ := blocks.NewBlockWithCid([]byte("y"), cid.NewCidV1(cid.Raw, h))
	if err := s.Put(context.Background(), b512); !errors.Is(err, ErrCIDForm) {
		t.Fatalf("sha2-512: %v", err)
	}
}

func TestReopenKeepsBlocks(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	var cids []cid.Cid
	for round := 0; round < 3; round++ {
		s, err := Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 5; i++ {
			b := rawBlock([]byte(fmt.Sprintf("round %d block %d %0200000d", round, i, i)))
			if err := s.PutManyDeferred(ctx, []blocks.Block{b}); err != nil {
				t.Fatal(err)
			}
			cids = append(cids, b.Cid())
		}
		if err := s.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		st, err := s.Stats(ctx)
		if err != nil || st.Blocks != len(cids) {
			t.Fatalf("stats %+v %v", st, err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	s := openT(t, dir)
	for _, c := range cids {
		b, err := s.Get(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		if err := Verify(c, b.RawData()); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Put(ctx, rawBlock([]byte("x"))); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := s.Put(ctx, rawBlock([]byte("y"))); !errors.Is(err, ErrClosed) {
		t.Fatalf("put after close: %v", err)
	}
}

func TestSecondOpenIsRefused(t *testing.T) {
	dir := t.TempDir()
	openT(t, dir)
	if s2, err := Open(dir); err == nil {
		s2.Close()
		t.Fatal("a second Open of the same directory succeeded")
	}
}

// damageFirstPack flips a byte near the end of the store's first pack
// (the store closed): the last record's value no longer matches its CID.
func damageFirstPack(t *testing.T, dir string) {
	t.Helper()
	p := filepath.Join(dir, "packs", "00000001.pack")
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)-100] ^= 1
	if err := os.WriteFile(p, raw, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestCorruptPackIsRefused flips a byte of a stored value on disk: Get fails
// with ErrHashMismatch instead of returning the bytes.
func TestCorruptPackIsRefused(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	b := rawBlock(make([]byte, 200000))
	if err := s.Put(ctx, b); err != nil {
		t.Fatal(err)
	}
	s.Close()
	damageFirstPack(t, dir)
	s, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Get(ctx, b.Cid()); !errors.Is(err, ErrHashMismatch) {
		t.Fatalf("corrupt value: %v", err)
	}
	if _, err := s.GetInto(ctx, b.Cid(), nil); !errors.Is(err, ErrHashMismatch) {
		t.Fatalf("corrupt value through GetInto: %v", err)
	}
	// GetIntoUnchecked leaves the check to its caller's hash, which
	// refuses the damaged bytes it returns.
	data, err := s.GetIntoUnchecked(ctx, b.Cid(), nil)
	if err != nil || len(data) != 200000 {
		t.Fatalf("unchecked read: %d bytes, %v", len(data), err)
	}
	if err := Verify(b.Cid(), data); !errors.Is(err, ErrHashMismatch) {
		t.Fatalf("the damaged bytes pass their hash: %v", err)
	}
}

// TestRePutRewritesLostPackBytes simulates an index entry that reached disk
// without its pack bytes: putting the block again rewrites it.
func TestRePutRewritesLostPackBytes(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	b := rawBlock(make([]byte, 300000))
	if err := s.Put(ctx, b); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := os.Truncate(filepath.Join(dir, "packs", "00000001.pack"), packHeader); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Get(ctx, b.Cid()); err == nil {
		t.Fatal("lost bytes served")
	}
	if err := s.Put(ctx, b); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(ctx, b.Cid()); err != nil || len(got.RawData()) != 300000 {
		t.Fatalf("re-put did not rewrite: %v", err)
	}
	// The rewrite is not charged again (plan: charged when first stored).
	used, err := s.Used(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := s.Stats(ctx); used != Charge(300000) || st.Charged() != used {
		t.Fatalf("after the rewrite: used %d, stats %d, want %d", used, st.Charged(), Charge(300000))
	}
}

// TestCloseDuringOperations closes the store while readers and writers run:
// they get ErrClosed, never a panic.
func TestCloseDuringOperations(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	b := rawBlock(make([]byte, 100000))
	if err := s.Put(ctx, b); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	started := make(chan struct{}, 4)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			started <- struct{}{}
			for i := 0; ; i++ {
				var err error
				if i%2 == 0 {
					_, err = s.Get(ctx, b.Cid())
				} else {
					err = s.PutManyDeferred(ctx, []blocks.Block{rawBlock([]byte(fmt.Sprint(w, i, "x")))})
				}
				if errors.Is(err, ErrClosed) {
					return
				}
				if err != nil {
					t.Errorf("operation failed with %v, not ErrClosed", err)
					return
				}
			}
		}()
	}
	for w := 0; w < 4; w++ {
		<-started
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
}

// openT opens the store in dir for a test, closed when it ends.
func openT(t testing.TB, dir string, opts ...Option) *Store {
	t.Helper()
	s, err := Open(dir, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
