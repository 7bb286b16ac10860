package blockstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	blocks "github.com/ipfs/go-block-format"

	"github.com/umbra-store/umbra/internal/kind"
)

// TestQuotaCountsEveryWrite: with a quota, every write path counts each
// new block's charge once, a write that would pass the cap fails with
// ErrFull (kind Full) and writes nothing, a held block costs nothing again,
// a delete gives its charge back, and the count survives a reopen.
func TestQuotaCountsEveryWrite(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	const quota = 300_000
	s, err := Open(dir, WithQuota(quota))
	if err != nil {
		t.Fatal(err)
	}
	big := rawBlock(make([]byte, 100_000))
	small := rawBlock([]byte("small"))
	for name, put := range map[string]func() error{
		"Put":             func() error { return s.Put(ctx, big) },
		"PutMany":         func() error { return s.PutMany(ctx, []blocks.Block{small}) },
		"PutManyDeferred": func() error { return s.PutManyDeferred(ctx, []blocks.Block{big, small}) }, // both held
	} {
		if err := put(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	// PutLeased (every put's and STORE's path) on a new block: it counts
	// too. (A held block costs nothing; the map above runs in any order.)
	leased := rawBlock([]byte("leased"))
	if err := s.PutLeased(ctx, []blocks.Block{leased}, []Lease{leaseOf("q", time.Now().Add(time.Hour))}, ByStore); err != nil {
		t.Fatalf("PutLeased: %v", err)
	}
	want := Charge(100_000) + Charge(5) + Charge(6)
	if used, _ := s.Used(ctx); used != want {
		t.Fatalf("used %d, want %d", used, want)
	}
	// 100 000 + 200 000 bytes would pass 300 000 with the overhead.
	b2, b3 := rawBlock(make([]byte, 100_001)), rawBlock(make([]byte, 100_002))
	err = s.PutManyDeferred(ctx, []blocks.Block{b2, b3})
	if !errors.Is(err, ErrFull) || kind.Of(err) != kind.Full {
		t.Fatalf("over the quota: %v", err)
	}
	if ok, _ := s.Has(ctx, b2.Cid()); ok {
		t.Fatal("a refused batch was partly written")
	}
	if err := s.PutManyDeferred(ctx, []blocks.Block{b2}); err != nil {
		t.Fatalf("within the quota: %v", err)
	}
	if err := s.DeleteBlock(ctx, big.Cid()); err != nil {
		t.Fatal(err)
	}
	want = Charge(5) + Charge(6) + Charge(100_001)
	if used, _ := s.Used(ctx); used != want {
		t.Fatalf("after a delete: used %d, want %d", used, want)
	}
	s.Sync(ctx)
	s.Close()
	s, err = Open(dir, WithQuota(quota))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	st, _ := s.Stats(ctx)
	if used, _ := s.Used(ctx); used != want || st.Charged() != want {
		t.Fatalf("after reopening: used %d, stats %d, want %d", used, st.Charged(), want)
	}
}

// TestQuotaConcurrentWriters: writers racing for the last room never take
// the store past its quota together.
func TestQuotaConcurrentWriters(t *testing.T) {
	ctx := context.Background()
	const quota, size = 1 << 20, 100_000
	s := openT(t, t.TempDir(), WithQuota(quota))
	var wg sync.WaitGroup
	var mu sync.Mutex
	taken := 0
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := make([]byte, size)
			copy(d, fmt.Sprint(i))
			err := s.PutManyDeferred(ctx, []blocks.Block{rawBlock(d)})
			if err == nil {
				mu.Lock()
				taken++
				mu.Unlock()
			} else if !errors.Is(err, ErrFull) {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	st, _ := s.Stats(ctx)
	used, _ := s.Used(ctx)
	if want := int(quota / Charge(size)); taken != want || st.Charged() != used || used > quota {
		t.Fatalf("%d taken (want %d); used %d, stats %d, quota %d", taken, want, used, st.Charged(), quota)
	}
}
