package blockstore

import (
	"context"
	"encoding/binary"
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

// TestCancelledFirstCountIsNotKept: without a quota the store counts what
// it holds on the first write, delete or Used. That first caller's ctx
// ends during the scan (a store of 4096 blocks or more: the scan looks at
// ctx every 4096): it fails, and the next caller counts again. Before, the
// failure was kept (a sync.Once): every put, delete, GC and Used of the
// session failed with "context canceled" (a client that gave up on the
// daemon's first put broke the daemon's store until a restart).
func TestCancelledFirstCountIsNotKept(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	bs := make([]blocks.Block, 4096)
	for i := range bs {
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], uint64(i))
		bs[i] = rawBlock(b[:])
	}
	if err := s.PutMany(ctx, bs); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openT(t, dir) // no quota: the count waits for the first write or Used
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Used(cancelled); !errors.Is(err, context.Canceled) {
		t.Fatalf("the count with a cancelled ctx: %v (the attack was not made)", err)
	}
	if err := s.Put(ctx, rawBlock([]byte("a put after a cancelled Used"))); err != nil {
		t.Fatalf("a put (own ctx live) after another caller's cancelled first count: %v", err)
	}
	used, err := s.Used(ctx)
	st, serr := s.Stats(ctx)
	if err != nil || serr != nil || used != st.Charged() || st.Blocks != 4097 {
		t.Fatalf("Used (ctx live) after a cancelled first count: %d %v; the index: %+v %v", used, err, st, serr)
	}
}

// TestDeleteRacingPutKeepsQuota: DeleteBlock looks the block's size up
// (absent: no charge to give back), and a put of the block (another
// repair of the same shard: each deletes, then puts) comes before the
// delete. The put waits for the delete and then stores the block, charged.
// Before, the put committed in between and the delete took its block away
// while its charge stayed counted until a restart.
func TestDeleteRacingPutKeepsQuota(t *testing.T) {
	ctx := context.Background()
	s := openT(t, t.TempDir())
	b := rawBlock([]byte("a block two repairs rewrite at once"))
	waiting := make(chan struct{})
	put := make(chan error, 1)
	t.Cleanup(func() { deleteLooked, putLockWaits = func() {}, func() {} })
	putLockWaits = func() { putLockWaits = func() {}; close(waiting) }
	deleteLooked = func() {
		deleteLooked = func() {}
		go func() { put <- s.PutMany(ctx, []blocks.Block{b}) }()
		select {
		case <-waiting: // the put waits for the delete
		case err := <-put: // it committed in between
			put <- err
		}
	}
	if err := s.DeleteBlock(ctx, b.Cid()); err != nil {
		t.Fatal(err)
	}
	if err := <-put; err != nil {
		t.Fatal(err)
	}
	st, err := s.Stats(ctx)
	used, uerr := s.Used(ctx)
	if err != nil || uerr != nil || used != st.Charged() {
		t.Fatalf("after a delete that raced a put: the index holds %+v (charged %d), the quota says %d (%v %v)", st, st.Charged(), used, err, uerr)
	}
	if ok, _ := s.Has(ctx, b.Cid()); !ok {
		t.Fatal("the put that came after the delete's lookup left no block")
	}
}
