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
	s := openT(t, dir)
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
	// A quarter live, but the rest freed already: nothing to rewrite.
	if c, err := s.Compact(ctx, DefaultMinLive); err != nil || c.Packs != 0 {
		t.Fatalf("a pack GC freed was rewritten: %+v %v", c, err)
	}
}

// diskBytes is the disk space the pack files of a store take.
func diskBytes(t testing.TB, dir string) int64 {
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

// TestMergeSpans: spans that touch or overlap join; a gap, or another
// pack, keeps them apart.
func TestMergeSpans(t *testing.T) {
	got := mergeSpans([]span{
		{pack: 2, start: 100, end: 200},
		{pack: 1, start: 200, end: 300},
		{pack: 1, start: 100, end: 200},
		{pack: 1, start: 301, end: 400},
	})
	want := []span{{1, 100, 300}, {1, 301, 400}, {2, 100, 200}}
	if !slices.Equal(got, want) {
		t.Fatalf("merged %+v, want %+v", got, want)
	}
}

// TestPunchChecksTheRecord: a hole whose record header does not name the
// deleted block (an index entry that outlived its bytes, its place in a
// pack now another block's) is not punched.
func TestPunchChecksTheRecord(t *testing.T) {
	ctx := context.Background()
	s := openT(t, t.TempDir())
	live := rawBlock(bytes.Repeat([]byte{7}, 100<<10))
	if err := s.PutMany(ctx, []blocks.Block{live}); err != nil {
		t.Fatal(err)
	}
	v, closer, err := s.db.Get(key(live.Cid().Hash()))
	if err != nil {
		t.Fatal(err)
	}
	h, ok := holeOf(rawBlock([]byte("another block, long gone")).Cid().Hash(), bytes.Clone(v))
	closer.Close()
	if !ok {
		t.Fatal("not a packed value")
	}
	if err := s.packs.punch(context.Background(), []hole{h}, nil); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(ctx, live.Cid()); err != nil || !bytes.Equal(got.RawData(), live.RawData()) {
		t.Fatalf("the live block in that place: %v", err)
	}
	h.mh = live.Cid().Hash() // its own record: punched
	if err := s.packs.punch(context.Background(), []hole{h}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, live.Cid()); !errors.Is(err, ErrHashMismatch) {
		t.Fatalf("read of a punched record: %v", err)
	}
}
