package blockstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"testing"
	"time"

	blocks "github.com/ipfs/go-block-format"
	ipld "github.com/ipfs/go-ipld-format"
)

func leaseOf(secret string, exp time.Time) Lease {
	return Lease{Expiry: uint64(exp.Unix()), Hash: sha256.Sum256([]byte(secret))}
}

// TestGCKeepsWhatOneLeaseHolds: two storers of one block (convergent data
// stored by two owners): the first lease expiring leaves it, the second
// expiring (after the grace) deletes it and gives its bytes back.
func TestGCKeepsWhatOneLeaseHolds(t *testing.T) {
	ctx := context.Background()
	s := openT(t, t.TempDir())
	now := time.Now()
	b := rawBlock(make([]byte, 100<<10))
	kept := rawBlock([]byte("no lease: kept"))
	if err := s.AddLease(ctx, b.Cid(), leaseOf("a", now.Add(time.Hour)), ByStore); !ipld.IsNotFound(err) {
		t.Fatalf("lease on a block not held: %v", err)
	}
	if err := s.PutMany(ctx, []blocks.Block{b, kept}); err != nil {
		t.Fatal(err)
	}
	before, _ := s.Stats(ctx)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.AddLease(ctx, b.Cid(), leaseOf("a", now.Add(time.Minute)), ByStore))
	must(s.AddLease(ctx, b.Cid(), leaseOf("b", now.Add(time.Hour)), ByStore))
	must(s.AddLease(ctx, b.Cid(), leaseOf("a", now.Add(time.Second)), ByStore)) // earlier: no change
	ls, err := s.Leases(ctx, b.Cid())
	must(err)
	found := false
	for _, l := range ls {
		if l.Hash == leaseOf("a", now).Hash {
			found = true
			if l.Expiry != uint64(now.Add(time.Minute).Unix()) {
				t.Fatalf("an earlier expiry shortened lease a: %d, want %d", l.Expiry, now.Add(time.Minute).Unix())
			}
		}
	}
	if len(ls) != 2 || !found {
		t.Fatalf("leases: %+v", ls)
	}
	st, err := s.GC(ctx, now.Add(2*time.Minute), time.Second)
	if err != nil || st.Leases != 1 || st.Blocks != 0 {
		t.Fatalf("first lease expired: %+v %v", st, err)
	}
	if ok, _ := s.Has(ctx, b.Cid()); !ok {
		t.Fatal("GC deleted a block one lease still holds")
	}
	if st, _ := s.GC(ctx, now.Add(time.Hour+30*time.Second), time.Minute); st.Leases != 0 {
		t.Fatalf("a lease went within its grace: %+v", st)
	}
	st, err = s.GC(ctx, now.Add(2*time.Hour), time.Minute)
	if err != nil || st.Leases != 1 || st.Blocks != 1 || st.Bytes != int64(len(b.RawData())) {
		t.Fatalf("last lease expired: %+v %v", st, err)
	}
	if ok, _ := s.Has(ctx, b.Cid()); ok {
		t.Fatal("a block whose leases all expired is still held")
	}
	if ok, _ := s.Has(ctx, kept.Cid()); !ok {
		t.Fatal("GC deleted a block that never had a lease")
	}
	after, _ := s.Stats(ctx)
	if before.Blocks-after.Blocks != 1 || s.quota.base+s.quota.delta.Load() != after.Charged() {
		t.Fatalf("counts after GC: %+v → %+v, quota %d", before, after, s.quota.base+s.quota.delta.Load())
	}
}

// TestLeaseLimits: a lease is cut to MaxLeaseTerm; a block takes at most
// MaxLeases; a cancelled lease ends now; a lease for ever (this node's own)
// never expires.
func TestLeaseLimits(t *testing.T) {
	ctx := context.Background()
	s := openT(t, t.TempDir())
	now := time.Now()
	b, own := rawBlock([]byte("leased")), rawBlock([]byte("own"))
	if err := s.PutMany(ctx, []blocks.Block{b, own}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddLease(ctx, b.Cid(), leaseOf("far", now.Add(10*MaxLeaseTerm)), ByStore); err != nil {
		t.Fatal(err)
	}
	ls, _ := s.Leases(ctx, b.Cid())
	if len(ls) != 1 || ls[0].Expiry > uint64(now.Add(MaxLeaseTerm+time.Minute).Unix()) {
		t.Fatalf("a lease past the term: %+v", ls)
	}
	if err := s.AddLease(ctx, b.Cid(), leaseOf("past", now.Add(-time.Minute)), ByRenew); !errors.Is(err, ErrLeaseExpired) {
		t.Fatalf("a lease already expired: %v", err)
	}
	for i := 1; i < MaxLeases/2; i++ {
		if err := s.AddLease(ctx, b.Cid(), leaseOf(string(rune('A'+i)), now.Add(time.Hour)), ByRenew); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.AddLease(ctx, b.Cid(), leaseOf("a stranger's", now.Add(time.Hour)), ByRenew); !errors.Is(err, ErrTooManyLeases) {
		t.Fatalf("RENEW past half the slots: %v", err)
	}
	for i := MaxLeases / 2; i < MaxLeases; i++ {
		if err := s.AddLease(ctx, b.Cid(), leaseOf(string(rune('a'+i)), now.Add(time.Hour)), ByStore); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.AddLease(ctx, b.Cid(), leaseOf("one too many", now.Add(time.Hour)), ByStore); !errors.Is(err, ErrTooManyLeases) {
		t.Fatalf("lease %d: %v", MaxLeases+1, err)
	}
	if err := s.CancelLease(ctx, b.Cid(), sha256.Sum256([]byte("nobody"))); !ipld.IsNotFound(err) {
		t.Fatalf("cancel of a lease not there: %v", err)
	}
	if err := s.CancelLease(ctx, b.Cid(), sha256.Sum256([]byte("far"))); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.GC(ctx, now.Add(time.Minute), 0); st.Leases != 1 || st.Blocks != 0 {
		t.Fatalf("GC after a cancel: %+v", st)
	}
	if err := s.AddLease(ctx, own.Cid(), Lease{Hash: sha256.Sum256([]byte("me"))}, Forever); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.GC(ctx, now.Add(100*MaxLeaseTerm), 0); st.Blocks != 1 {
		t.Fatalf("GC far ahead: %+v (want the leased block only)", st)
	}
	if ok, _ := s.Has(ctx, own.Cid()); !ok {
		t.Fatal("a lease for ever expired")
	}
}

// TestPutLeased: a block and its lease are written together; a block held
// already gets the lease; a lease already expired writes nothing.
func TestPutLeased(t *testing.T) {
	ctx := context.Background()
	s := openT(t, t.TempDir())
	now := time.Now()
	b := rawBlock(make([]byte, 70<<10))
	if err := s.PutLeased(ctx, []blocks.Block{b}, []Lease{leaseOf("past", now.Add(-time.Second))}, ByStore); !errors.Is(err, ErrLeaseExpired) {
		t.Fatalf("an expired lease: %v", err)
	}
	if ok, _ := s.Has(ctx, b.Cid()); ok {
		t.Fatal("a block stored with a lease refused")
	}
	for _, who := range []string{"a", "b"} {
		if err := s.PutLeased(ctx, []blocks.Block{b}, []Lease{leaseOf(who, now.Add(time.Hour))}, ByStore); err != nil {
			t.Fatal(err)
		}
	}
	if ls, _ := s.Leases(ctx, b.Cid()); len(ls) != 2 {
		t.Fatalf("leases: %+v", ls)
	}
	if st, _ := s.GC(ctx, now.Add(2*time.Hour), 0); st.Blocks != 1 {
		t.Fatalf("GC: %+v", st)
	}
}

// TestPutLeasedBlockDeletedMeanwhile: a put finds a block held, and GC
// deletes it before the put writes its lease (GC ran at once from two
// places under load in CI, twice in a row for one put: the put failed).
// The put writes the block again with its lease, and charges the quota
// for it.
func TestPutLeasedBlockDeletedMeanwhile(t *testing.T) {
	ctx := context.Background()
	s := openT(t, t.TempDir())
	now := time.Now()
	big := rawBlock(bytes.Repeat([]byte{7}, 200<<10)) // packed
	small := rawBlock(bytes.Repeat([]byte{8}, 100))   // inline
	bs := []blocks.Block{big, small, big}             // one twice
	a := leaseOf("a", now.Add(time.Minute))           // expired an hour on
	expired := []Lease{a, a, a}
	if err := s.PutLeased(ctx, bs, expired, ByStore); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { planned = func() {} })
	rounds := 0
	planned = func() {
		rounds++
		if rounds > 1 {
			return
		}
		st, err := s.Collect(ctx, now.Add(time.Hour), 0, AllDead)
		if err != nil || st.Blocks != 2 {
			t.Errorf("GC meanwhile: %+v %v", st, err)
		}
	}
	l := leaseOf("b", now.Add(2*time.Hour))
	if err := s.PutLeased(ctx, bs, []Lease{l, l, l}, ByStore); err != nil {
		t.Fatalf("a put whose held blocks GC deleted meanwhile: %v", err)
	}
	for _, b := range bs[:2] {
		got, err := s.Get(ctx, b.Cid())
		if err != nil || !bytes.Equal(got.RawData(), b.RawData()) {
			t.Fatalf("the block after the put: %v", err)
		}
		ls, err := s.Leases(ctx, b.Cid())
		if err != nil || len(ls) != 1 || ls[0].Hash != l.Hash {
			t.Fatalf("its leases: %+v %v", ls, err)
		}
	}
	st, err := s.Stats(ctx)
	if err != nil || st.Blocks != 2 || s.quota.base+s.quota.delta.Load() != st.Charged() {
		t.Fatalf("counts: %+v %v, quota %d", st, err, s.quota.base+s.quota.delta.Load())
	}
}

// TestRewriteOfBrokenBlockDeletedMeanwhile: a put finds a block's stored
// copy broken (its pack bytes damaged) and rewrites it without charging
// the quota again; GC deletes the block, giving its charge back, between
// the put's check and its batch. The rewrite is then a new block and is
// charged: the quota's count stays what the index holds.
func TestRewriteOfBrokenBlockDeletedMeanwhile(t *testing.T) {
	for _, leased := range []bool{true, false} {
		t.Run(fmt.Sprintf("leased=%v", leased), func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			now := time.Now()
			big := rawBlock(bytes.Repeat([]byte{9}, 200<<10)) // packed
			s := openT(t, dir)
			a := leaseOf("a", now.Add(time.Minute)) // expired an hour on
			if err := s.PutLeased(ctx, []blocks.Block{big}, []Lease{a}, ByStore); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			damageFirstPack(t, dir)
			s = openT(t, dir)
			if got := s.heldIntact(big.Cid()); got != broken {
				t.Fatalf("the damaged block is held %v, want broken", got)
			}
			t.Cleanup(func() { planned = func() {} })
			rounds := 0
			planned = func() {
				if rounds++; rounds > 1 {
					return
				}
				st, err := s.Collect(ctx, now.Add(time.Hour), 0, AllDead)
				if err != nil || st.Blocks != 1 {
					t.Errorf("GC meanwhile: %+v %v", st, err)
				}
			}
			var err error
			if leased {
				l := leaseOf("b", now.Add(2*time.Hour))
				err = s.PutLeased(ctx, []blocks.Block{big}, []Lease{l}, ByStore)
			} else {
				err = s.PutMany(ctx, []blocks.Block{big})
			}
			if err != nil {
				t.Fatalf("rewrite of a broken block GC deleted meanwhile: %v", err)
			}
			if rounds != 1 {
				t.Fatalf("GC ran %d times, want once", rounds)
			}
			got, err := s.Get(ctx, big.Cid())
			if err != nil || !bytes.Equal(got.RawData(), big.RawData()) {
				t.Fatalf("the block after the put: %v", err)
			}
			st, err := s.Stats(ctx)
			if err != nil || st.Blocks != 1 || s.quota.base+s.quota.delta.Load() != st.Charged() {
				t.Fatalf("counts: %+v %v, quota %d", st, err, s.quota.base+s.quota.delta.Load())
			}
		})
	}
}

// TestPutLeasedSameBlockTwiceKeepsLongerLease: a PutLeased batch holds
// one block twice with one lease hash and two expiries (convergent shards
// of one put). The second extends the lease the first wrote in the batch.
// Before, both were checked against the index alone: both wrote an expiry
// key, the earlier one was left stale, and GC at the earlier expiry
// deleted the lease through it, and the block with it, an hour early.
func TestPutLeasedSameBlockTwiceKeepsLongerLease(t *testing.T) {
	ctx := context.Background()
	s := openT(t, t.TempDir())
	now := time.Now()
	b := rawBlock(bytes.Repeat([]byte{4}, 100<<10))
	short, long := leaseOf("a", now.Add(time.Hour)), leaseOf("a", now.Add(3*time.Hour))
	if err := s.PutLeased(ctx, []blocks.Block{b, b}, []Lease{short, long}, ByStore); err != nil {
		t.Fatal(err)
	}
	ls, err := s.Leases(ctx, b.Cid())
	if err != nil || len(ls) != 1 || ls[0].Expiry != long.Expiry {
		t.Fatalf("leases after the put: %+v %v", ls, err)
	}
	st, err := s.GC(ctx, now.Add(2*time.Hour), 0)
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.Has(ctx, b.Cid()); !ok {
		t.Fatalf("GC an hour before the block's only lease (%d) expires deleted it: %+v", long.Expiry, st)
	}
}

// TestPutLeasedBatchRespectsMaxLeases: one PutLeased holding a block
// MaxLeases+1 times under distinct lease hashes is refused (before, the
// count looked at the index alone: one batch gave a block any number of
// leases, and lease entries are not charged).
func TestPutLeasedBatchRespectsMaxLeases(t *testing.T) {
	ctx := context.Background()
	s := openT(t, t.TempDir())
	now := time.Now()
	b := rawBlock([]byte("one block, many storers"))
	var bs []blocks.Block
	var ls []Lease
	for i := range MaxLeases + 1 {
		bs = append(bs, b)
		ls = append(ls, leaseOf(fmt.Sprint(i), now.Add(time.Hour)))
	}
	err := s.PutLeased(ctx, bs, ls, ByStore)
	got, lerr := s.Leases(ctx, b.Cid())
	if !errors.Is(err, ErrTooManyLeases) || lerr != nil || len(got) != 0 {
		t.Fatalf("one batch gave a block %d leases (max %d), put error %v", len(got), MaxLeases, err)
	}
	if err := s.PutLeased(ctx, bs[:MaxLeases], ls[:MaxLeases], ByStore); err != nil {
		t.Fatalf("a batch of %d leases: %v", MaxLeases, err)
	}
	if got, err := s.Leases(ctx, b.Cid()); err != nil || len(got) != MaxLeases {
		t.Fatalf("leases after a batch of %d: %d %v", MaxLeases, len(got), err)
	}
}
