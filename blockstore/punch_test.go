package blockstore

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	blocks "github.com/ipfs/go-block-format"
	ipld "github.com/ipfs/go-ipld-format"
)

// TestGCPunchesDeletedBlocks: GC frees an expired block's bytes at once,
// in the pack it shares with live blocks, without compacting: its bytes
// are nowhere in the pack files, the disk space is given back, and the
// live blocks read back. Reads running meanwhile, of the expired blocks
// too, either get the block or "not found": never a corrupt block.
func TestGCPunchesDeletedBlocks(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Now()
	src := rand.NewChaCha8([32]byte{5})
	var live, dead []blocks.Block
	for i := range 64 {
		d := make([]byte, 256<<10)
		src.Read(d)
		b := rawBlock(d)
		if err := s.PutMany(ctx, []blocks.Block{b}); err != nil {
			t.Fatal(err)
		}
		if i%4 == 0 {
			live = append(live, b)
			continue
		}
		dead = append(dead, b)
		if err := s.AddLease(ctx, b.Cid(), leaseOf("x", now.Add(time.Hour)), ByStore); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	before := diskBytes(t, dir)

	all := append(append([]blocks.Block(nil), live...), dead...)
	var stop atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for g := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				b := all[(i*7+g)%len(all)]
				got, err := s.Get(ctx, b.Cid())
				switch {
				case ipld.IsNotFound(err):
				case err != nil:
					errs <- err
					return
				case !bytes.Equal(got.RawData(), b.RawData()):
					errs <- errors.New("a read returned other bytes")
					return
				}
			}
		}()
	}
	st, err := s.GC(ctx, now.Add(2*time.Hour), 0)
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("a read during GC: %v", err)
	}
	if err != nil || st.Blocks != len(dead) {
		t.Fatalf("gc: %+v %v", st, err)
	}
	packs, _ := filepath.Glob(filepath.Join(dir, "packs", "*.pack"))
	for _, p := range packs {
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range dead {
			if bytes.Contains(raw, b.RawData()[:4096]) {
				t.Fatalf("%s still holds an expired block's bytes", filepath.Base(p))
			}
		}
	}
	if after := diskBytes(t, dir); before-after < int64(len(dead))*(256<<10)*9/10 {
		t.Fatalf("disk use %d before GC, %d after: the space was not given back", before, after)
	}
	for _, b := range live {
		if got, err := s.Get(ctx, b.Cid()); err != nil || !bytes.Equal(got.RawData(), b.RawData()) {
			t.Fatalf("a live block: %v", err)
		}
	}
	for _, b := range dead[:3] {
		if _, err := s.Get(ctx, b.Cid()); !ipld.IsNotFound(err) {
			t.Fatalf("an expired block: %v", err)
		}
	}
}

// diskBytes is the disk space the pack files of a store take.
func diskBytes(t *testing.T, dir string) int64 {
	t.Helper()
	packs, _ := filepath.Glob(filepath.Join(dir, "packs", "*.pack"))
	var n int64
	for _, p := range packs {
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err != nil {
			t.Fatal(err)
		}
		n += st.Blocks * 512
	}
	return n
}

// TestReadGate: wait returns once the reads in flight when it started have
// left, whatever reads started after it.
func TestReadGate(t *testing.T) {
	g := newReadGate()
	first := g.enter()
	done := make(chan struct{})
	go func() { g.wait(); close(done) }()
	for { // until wait has started a new generation
		g.mu.Lock()
		started := g.gen == first+1
		g.mu.Unlock()
		if started {
			break
		}
		runtime.Gosched()
	}
	later := g.enter() // in the new generation: wait does not wait for it
	select {
	case <-done:
		t.Fatal("wait returned with a read from before it in flight")
	default:
	}
	g.leave(first)
	<-done
	g.leave(later)
	g.wait() // nothing from before it in flight
}

// TestMergeHoles: holes one record header apart join; a gap that could
// hold a live record, or another pack, keeps them apart.
func TestMergeHoles(t *testing.T) {
	const hdr = 5 + 34
	got := mergeHoles([]location{
		{pack: 2, offset: 100, length: 70000},
		{pack: 1, offset: 100 + 70000 + hdr, length: 80000},
		{pack: 1, offset: 100, length: 70000},
		{pack: 1, offset: 100 + 70000 + hdr + 80000 + hdr + packThreshold + hdr, length: 90000}, // a live record between
	})
	want := []location{
		{pack: 1, offset: 100, length: 70000 + hdr + 80000},
		{pack: 1, offset: 100 + 70000 + hdr + 80000 + hdr + packThreshold + hdr, length: 90000},
		{pack: 2, offset: 100, length: 70000},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("merged %+v, want %+v", got, want)
	}
}
