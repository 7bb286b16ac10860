package blockstore

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	blocks "github.com/ipfs/go-block-format"
)

// compactFixture fills dir's store with n blocks of 100 KiB in a pack of
// their own, every other one under a lease that has expired, and collects
// those: it returns the live blocks and the dead ones.
func compactFixture(t testing.TB, dir string, seed uint64, n int) (live, dead []blocks.Block) {
	ctx := context.Background()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 7))
	for i := range n {
		d := make([]byte, 100<<10)
		for j := range d {
			d[j] = byte(rng.Uint32())
		}
		b := rawBlock(d)
		if err := s.PutMany(ctx, []blocks.Block{b}); err != nil {
			t.Fatal(err)
		}
		if i%2 == 1 {
			dead = append(dead, b)
		} else {
			live = append(live, b)
		}
	}
	// Deleted (as repair on read does): their records stay as dead bytes
	// (GC would have punched them out already).
	for _, b := range dead {
		if err := s.DeleteBlock(ctx, b.Cid()); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return live, dead
}

// packBytes returns every pack file's content.
func packBytes(t *testing.T, dir string) []byte {
	t.Helper()
	var all []byte
	ms, _ := filepath.Glob(filepath.Join(dir, "packs", "*.pack"))
	for _, m := range ms {
		b, err := os.ReadFile(m)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	return all
}

// checkStore: every live block is served and verifies; no dead block is
// held; the quota counter is the sum of the live blocks.
func checkStore(t *testing.T, s *Store, live, dead []blocks.Block) {
	t.Helper()
	ctx := context.Background()
	var want int64
	for _, b := range live {
		got, err := s.Get(ctx, b.Cid())
		if err != nil || !bytes.Equal(got.RawData(), b.RawData()) {
			t.Fatalf("live block %s: %v", b.Cid(), err)
		}
		want += Charge(len(b.RawData()))
	}
	for _, b := range dead {
		if ok, _ := s.Has(ctx, b.Cid()); ok {
			t.Fatalf("dead block %s held", b.Cid())
		}
	}
	st, err := s.Stats(ctx)
	used, uerr := s.Used(ctx)
	if err != nil || uerr != nil || st.Charged() != want || used != want {
		t.Fatalf("charged %d (counter %d), live blocks %d: %v %v", st.Charged(), used, want, err, uerr)
	}
}

// TestCompactReclaims: after GC and compaction the dead blocks' bytes are
// gone from the disk, the live ones are served, the pack is smaller.
func TestCompactReclaims(t *testing.T) {
	dir := t.TempDir()
	live, dead := compactFixture(t, dir, 1, 20)
	before := len(packBytes(t, dir))
	s := openT(t, dir)
	st, err := s.Compact(context.Background(), DefaultMinLive)
	if err != nil || st.Packs != 1 || st.Moved != len(live) {
		t.Fatalf("compact: %+v %v", st, err)
	}
	checkStore(t, s, live, dead)
	s.Close()
	after := packBytes(t, dir)
	if len(after) >= before*3/4 {
		t.Fatalf("packs %d bytes before, %d after", before, len(after))
	}
	for _, b := range dead {
		if bytes.Contains(after, b.RawData()[1000:1064]) {
			t.Fatalf("a dead block's bytes are still in a pack")
		}
	}
}

// compactorEnv makes the test binary compact a store and die at a step.
const compactorEnv = "UMBRA_BLOCKSTORE_COMPACTOR"

// compactor compacts the store in dir (UMBRA_BLOCKSTORE_COMPACTOR=dir:step)
// and kills itself with SIGKILL at step.
func compactor(arg string) {
	dir, step, _ := strings.Cut(arg, ":")
	compactStep = func(at string) {
		if at == step {
			fmt.Println("DYING", at)
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}
	}
	s, err := Open(dir)
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	if _, err := s.Compact(context.Background(), DefaultMinLive); err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	fmt.Println("DONE")
	os.Exit(0)
}

// TestKillDuringCompaction kills a compaction with SIGKILL at each of its
// steps, one round each, over the same store: after each, every live block
// is served and verifies, no dead block comes back, and the quota counter
// is the sum of the live blocks; a last compaction leaves no dead pack.
func TestKillDuringCompaction(t *testing.T) {
	dir := t.TempDir()
	var live, dead []blocks.Block
	for round, step := range []string{"copied", "synced", "committed"} {
		l, d := compactFixture(t, dir, uint64(round+10), 8)
		live, dead = append(live, l...), append(dead, d...)
		cmd := exec.Command(os.Args[0], "-test.run", "^$")
		cmd.Env = append(os.Environ(), compactorEnv+"="+dir+":"+step)
		out, _ := cmd.Output()
		sc := bufio.NewScanner(bytes.NewReader(out))
		if !sc.Scan() || sc.Text() != "DYING "+step {
			t.Fatalf("round %d: the compactor said %q", round, out)
		}
		s, err := Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		checkStore(t, s, live, dead)
		s.Close()
	}
	s := openT(t, dir)
	if _, err := s.Compact(context.Background(), DefaultMinLive); err != nil {
		t.Fatal(err)
	}
	checkStore(t, s, live, dead)
	if st, _ := s.Compact(context.Background(), DefaultMinLive); st.Packs != 0 {
		t.Fatalf("a second compaction found %d packs to rewrite", st.Packs)
	}
}

// TestCompactActivePack: a running store's active pack, mostly dead, is
// closed and rewritten too (a daemon writes one pack for a long time).
func TestCompactActivePack(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s := openT(t, dir)
	var live, dead []blocks.Block
	for i := range 30 {
		b := rawBlock(bytes.Repeat([]byte{byte(i), byte(i >> 8), 0x5a}, 40000))
		if err := s.PutMany(ctx, []blocks.Block{b}); err != nil {
			t.Fatal(err)
		}
		if i%3 == 0 {
			live = append(live, b)
			continue
		}
		dead = append(dead, b)
		// Deleted as repair on read does: dead bytes for compaction (GC
		// punches its blocks' bytes out itself).
		if err := s.DeleteBlock(ctx, b.Cid()); err != nil {
			t.Fatal(err)
		}
	}
	st, err := s.Compact(ctx, DefaultMinLive)
	if err != nil || st.Packs != 1 || st.Freed <= 0 {
		t.Fatalf("compact: %+v %v", st, err)
	}
	checkStore(t, s, live, dead)
	if st, err := s.Compact(ctx, AllDead); err != nil || st.Packs != 0 {
		t.Fatalf("a pack with no dead byte rewritten: %+v %v", st, err)
	}
	all := packBytes(t, dir)
	for _, b := range dead {
		if bytes.Contains(all, b.RawData()[:120]) {
			t.Fatal("a dead block's bytes are still in a pack")
		}
	}
}

// TestDropPackWaitsForLookups: a read that looked a block up in a pack
// before a compaction moved it, and has not reached the pack yet, still
// reads it: the compaction waits for it before it removes the pack (it
// had found the pack gone, and reported the live block corrupt).
func TestDropPackWaitsForLookups(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	live, _ := compactFixture(t, dir, 11, 8)
	s := openT(t, dir)
	looked, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	afterLookup = func() { once.Do(func() { close(looked); <-release }) }
	defer func() { afterLookup = func() {} }()
	read := make(chan error, 1)
	go func() {
		b, err := s.Get(ctx, live[0].Cid())
		if err == nil && !bytes.Equal(b.RawData(), live[0].RawData()) {
			err = fmt.Errorf("read other bytes")
		}
		read <- err
	}()
	<-looked
	s.gate.mu.Lock()
	gen := s.gate.gen
	s.gate.mu.Unlock()
	compacted := make(chan error, 1)
	go func() {
		st, err := s.Compact(ctx, AllDead)
		if err == nil && st.Packs == 0 {
			err = fmt.Errorf("no pack compacted")
		}
		compacted <- err
	}()
	// The read goes on once the compaction has removed the pack, or waits
	// at the gate to.
	var cerr error
	done := false
	for waiting := false; !done && !waiting; {
		select {
		case cerr = <-compacted:
			done = true
		case <-time.After(time.Millisecond):
			s.gate.mu.Lock()
			waiting = s.gate.gen != gen
			s.gate.mu.Unlock()
		}
	}
	close(release)
	if err := <-read; err != nil {
		t.Fatalf("a read that looked the block up before the compaction: %v", err)
	}
	if !done {
		cerr = <-compacted
	}
	if cerr != nil {
		t.Fatal(cerr)
	}
}

// TestSyncHoldsPackAgainstDrop: a compaction drops a pack while a sync of
// it runs (two GCs at once in TestGCStress; under the race detector the
// close met the sync's fsync). The drop waits for the sync: the sync
// succeeds, then the pack goes.
func TestSyncHoldsPackAgainstDrop(t *testing.T) {
	ctx := context.Background()
	s := openT(t, t.TempDir())
	if err := s.PutManyDeferred(ctx, []blocks.Block{rawBlock(bytes.Repeat([]byte{3}, 200<<10))}); err != nil {
		t.Fatal(err)
	}
	p := s.packs
	p.mu.Lock()
	err := p.startPack(2) // pack 1, with its unsynced record, is no longer the active one
	p.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syncing = func() {} })
	dropped := make(chan error, 1)
	met := false
	syncing = func() {
		syncing = func() {}
		go func() {
			_, err := s.dropPack(1)
			dropped <- err
		}()
		// Wait until the drop has taken the pack out of use and waits for
		// the sync's hold, or (without the hold) has closed it.
		for {
			p.mu.Lock()
			waiting := p.files[1] == nil && p.reading[1] > 0
			p.mu.Unlock()
			if waiting {
				met = true
				return
			}
			select {
			case err := <-dropped:
				dropped <- err
				return
			default:
				runtime.Gosched()
			}
		}
	}
	if err := s.Sync(ctx); err != nil {
		t.Fatalf("a sync whose pack a compaction dropped meanwhile: %v", err)
	}
	if !met {
		t.Fatal("the drop did not wait for the sync")
	}
	if err := <-dropped; err != nil {
		t.Fatalf("drop: %v", err)
	}
	if _, err := os.Stat(p.path(1)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the dropped pack is still there: %v", err)
	}
}
