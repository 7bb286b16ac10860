package blockstore

import (
	"bytes"
	"context"
	"errors"
	"os"
	"testing"

	blocks "github.com/ipfs/go-block-format"
)

// parkFirstSync makes the next pack sync stop in the syncing hook, after
// it has taken (and cleared) the unsynced marks of the packs it syncs and
// before their fdatasync. parked is closed when it stops; release (once;
// also at the test's end) lets it go on. waits is called when a later
// sync waits for it (the syncWaits hook).
func parkFirstSync(t *testing.T, waits func()) (parked chan struct{}, release func()) {
	parked = make(chan struct{})
	rel := make(chan struct{})
	released := false
	release = func() {
		if !released {
			released = true
			close(rel)
		}
	}
	syncing = func() {
		syncing = func() {}
		close(parked)
		<-rel
	}
	syncWaits = waits
	t.Cleanup(func() { release(); syncing, syncWaits = func() {}, func() {} })
	return parked, release
}

// TestSyncWaitsForSyncInFlight: a Sync that comes while another pack sync
// (here DeleteBlock's; GC's, a compaction's or a synced put's alike) has
// taken the packs' unsynced marks but not made its fdatasync waits for it.
// Before, it found nothing to sync and acknowledged a deferred put as
// durable while its bytes were still only in the page cache.
func TestSyncWaitsForSyncInFlight(t *testing.T) {
	ctx := context.Background()
	s := openT(t, t.TempDir())
	big := rawBlock(bytes.Repeat([]byte{5}, 200<<10)) // packed
	if err := s.PutManyDeferred(ctx, []blocks.Block{big}); err != nil {
		t.Fatal(err)
	}
	waiting := make(chan struct{})
	parked, release := parkFirstSync(t, func() { close(waiting) })
	deleted := make(chan error, 1)
	go func() { deleted <- s.DeleteBlock(ctx, rawBlock([]byte("not held")).Cid()) }()
	<-parked // DeleteBlock's sync has pack 1's mark, no fdatasync yet
	synced := make(chan error, 1)
	go func() { synced <- s.Sync(ctx) }()
	select {
	case <-waiting:
		release()
	case err := <-synced:
		t.Fatalf("Sync returned (%v) while the only fdatasync of the deferred put's pack was still to come", err)
	}
	if err := <-synced; err != nil {
		t.Fatal(err)
	}
	if err := <-deleted; err != nil {
		t.Fatal(err)
	}
}

// TestCompactWaitsForSyncInFlight: another sync takes the mark of the pack
// a compaction has just copied a live block into; the compaction's own
// sync waits for it before the index points at the copy and the old pack
// is removed. Before, it found nothing to sync and removed the block's
// only durable copy: a crash then lost it.
func TestCompactWaitsForSyncInFlight(t *testing.T) {
	ctx := context.Background()
	s := openT(t, t.TempDir())
	live := rawBlock(bytes.Repeat([]byte{1}, 200<<10))
	dead := rawBlock(bytes.Repeat([]byte{2}, 200<<10))
	if err := s.PutMany(ctx, []blocks.Block{live, dead}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteBlock(ctx, dead.Cid()); err != nil {
		t.Fatal(err)
	}
	p := s.packs
	p.mu.Lock()
	err := p.startPack(2) // pack 1 is no longer the active one
	p.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	waited := false
	var release func()
	var parked chan struct{}
	parked, release = parkFirstSync(t, func() {
		waited = true
		if _, err := os.Stat(p.path(1)); err != nil {
			t.Errorf("pack 1 gone before the copy out of it was synced: %v", err)
		}
		release()
	})
	deleted := make(chan error, 1)
	t.Cleanup(func() { compactStep = func(string) {} })
	compactStep = func(step string) {
		if step == "copied" {
			go func() { deleted <- s.DeleteBlock(ctx, rawBlock([]byte("not held")).Cid()) }()
			<-parked // it has pack 2's mark (the copy), no fdatasync yet
		}
	}
	st, err := s.Compact(ctx, AllDead)
	if err != nil || st.Moved != 1 {
		t.Fatalf("compaction: %+v %v", st, err)
	}
	if !waited {
		t.Fatal("the compaction did not wait for the sync that had its copy's pack")
	}
	if err := <-deleted; err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p.path(1)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("pack 1 after the compaction: %v", err)
	}
	got, err := s.Get(ctx, live.Cid())
	if err != nil || !bytes.Equal(got.RawData(), live.RawData()) {
		t.Fatalf("the live block after the compaction: %v", err)
	}
}
