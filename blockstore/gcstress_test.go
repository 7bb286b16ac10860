package blockstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	blocks "github.com/ipfs/go-block-format"
	ipld "github.com/ipfs/go-ipld-format"
)

// holeFor is the hole of stored block b (its index value as it is now).
func holeFor(t *testing.T, s *Store, b blocks.Block) hole {
	t.Helper()
	v, closer, err := s.db.Get(key(b.Cid().Hash()))
	if err != nil {
		t.Fatal(err)
	}
	defer closer.Close()
	h, ok := holeOf(b.Cid().Hash(), bytes.Clone(v))
	if !ok {
		t.Fatal("not a packed value")
	}
	return h
}

// TestPunchFailureKeepsGoing: a span that can be neither punched nor
// zeroed (here: pack 1 behind a read-only handle) fails the punch, but the
// other spans are still freed.
func TestPunchFailureKeepsGoing(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	x := rawBlock(bytes.Repeat([]byte{1}, 100<<10))
	if err := s.PutMany(ctx, []blocks.Block{x}); err != nil { // pack 1
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(dir); err != nil { // a new active pack: 2
		t.Fatal(err)
	}
	defer s.Close()
	y := rawBlock(bytes.Repeat([]byte{2}, 100<<10))
	if err := s.PutMany(ctx, []blocks.Block{y}); err != nil {
		t.Fatal(err)
	}
	hx, hy := holeFor(t, s, x), holeFor(t, s, y)
	if hx.loc.pack >= hy.loc.pack {
		t.Fatalf("want x in an earlier pack than y: %d, %d", hx.loc.pack, hy.loc.pack)
	}
	// Pack 1 can be neither punched nor written (fallocate and pwrite on
	// a read-only descriptor fail with EBADF).
	ro, err := os.Open(s.packs.path(hx.loc.pack))
	if err != nil {
		t.Fatal(err)
	}
	s.packs.mu.Lock()
	rw := s.packs.files[hx.loc.pack]
	s.packs.files[hx.loc.pack] = ro
	s.packs.mu.Unlock()
	perr := s.packs.punch(ctx, []hole{hx, hy}, nil)
	s.packs.mu.Lock()
	s.packs.files[hx.loc.pack] = rw
	s.packs.mu.Unlock()
	ro.Close()
	if perr == nil {
		t.Fatal("a span that could not be freed, and no error")
	}
	if _, err := s.Get(ctx, y.Cid()); !errors.Is(err, ErrHashMismatch) {
		t.Fatalf("pack 1's failure kept pack 2's record from being freed: a read of it: %v (punch: %v)", err, perr)
	}
}

// TestGCStress: GC rounds (their punches paced, outside the lease lock),
// re-stores of the blocks they delete, compactions and reads run at once,
// until the collectors have deleted 400 blocks and removed 10 packs. No read of a block is
// ever corrupt, and every block left in the index reads back intact.
func TestGCStress(t *testing.T) {
	if testing.Short() {
		t.Skip("stress")
	}
	ctx := context.Background()
	s := openT(t, t.TempDir())
	src := rand.NewChaCha8([32]byte{9})
	var all []blocks.Block
	for range 48 {
		d := make([]byte, 192<<10)
		src.Read(d)
		all = append(all, rawBlock(d))
	}
	now := time.Now()
	var stop atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	run := func(f func(i int) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				if err := f(i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	// Storers: each put gives a lease that a GC "an hour on" finds expired.
	for g := range 2 {
		run(func(i int) error {
			b := all[(i*5+g)%len(all)]
			l := leaseOf(fmt.Sprint("s", i%3), now.Add(time.Minute))
			return s.PutLeased(ctx, []blocks.Block{b}, []Lease{l}, ByStore)
		})
	}
	// Readers (they also make the pacer slow the punches down).
	for g := range 2 {
		run(func(i int) error {
			b := all[(i*7+g)%len(all)]
			got, err := s.Get(ctx, b.Cid())
			switch {
			case ipld.IsNotFound(err):
			case err != nil:
				return fmt.Errorf("read: %w", err)
			case !bytes.Equal(got.RawData(), b.RawData()):
				return errors.New("a read returned other bytes")
			}
			return nil
		})
	}
	// Two collectors (the daemon's and umbra gc's).
	var gcBlocks, gcPacks atomic.Int64
	var collectors sync.WaitGroup
	for range 2 {
		collectors.Go(func() {
			for i := 0; gcBlocks.Load() < 400 || gcPacks.Load() < 10; i++ {
				if i == 100000 {
					errs <- errors.New("the collectors never got to 400 blocks and 10 packs")
					return
				}
				st, err := s.Collect(ctx, now.Add(time.Hour), 0, AllDead)
				gcBlocks.Add(int64(st.Blocks))
				gcPacks.Add(int64(st.Packs))
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	collectors.Wait()
	stop.Store(true)
	wg.Wait()

	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("GC deleted %d blocks, compaction removed %d packs", gcBlocks.Load(), gcPacks.Load())
	for _, b := range all {
		got, err := s.Get(ctx, b.Cid())
		if ipld.IsNotFound(err) {
			continue
		}
		if err != nil || !bytes.Equal(got.RawData(), b.RawData()) {
			t.Errorf("a block in the index after the run: %v", err)
		}
	}
}
