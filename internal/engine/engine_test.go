package engine

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/umbra-store/umbra/blockstore"
	"github.com/umbra-store/umbra/chunker"
	"github.com/umbra-store/umbra/erasure"
	"github.com/umbra-store/umbra/internal/format"
	"github.com/umbra-store/umbra/internal/randstream"
	"github.com/umbra-store/umbra/keyring"
)

func testSecrets(seed byte) keyring.Secrets {
	k, _ := keyring.KeyFromBytes(bytes.Repeat([]byte{seed}, 32))
	return keyring.NewSecrets(k)
}

func randomBytes(seed uint64, n int) []byte { return randstream.Bytes(byte(seed), n) }

func openStore(t testing.TB) *blockstore.Store {
	t.Helper()
	s, err := blockstore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func countBlocks(t testing.TB, s *blockstore.Store) map[cid.Cid]bool {
	t.Helper()
	ch, err := s.AllKeysChan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	m := map[cid.Cid]bool{}
	for c := range ch {
		m[c] = true
	}
	return m
}

func TestRoundTripSizes(t *testing.T) {
	sizes := []struct {
		name string
		n    int64
	}{
		{"empty", 0},
		{"one-byte", 1},
		{"chunk-min-1", chunker.MinSize - 1},
		{"chunk-max+1", chunker.MaxSize + 1},
		{"10MiB", 10 << 20},
		{"300MiB", 300 << 20},
	}
	for _, random := range []bool{false, true} {
		mode := "convergent"
		if random {
			mode = "random-key"
		}
		for _, sz := range sizes {
			t.Run(mode+"/"+sz.name, func(t *testing.T) {
				if sz.n > 100<<20 && testing.Short() {
					t.Skip("large size skipped in -short")
				}
				ctx := context.Background()
				e := New(openStore(t), testSecrets(1))
				want := sha256.New()
				res, err := e.Put(ctx, io.TeeReader(randstream.New(byte(sz.n), sz.n), want), PutOptions{RandomKey: random})
				if err != nil {
					t.Fatal(err)
				}
				if res.Size != uint64(sz.n) {
					t.Fatalf("put size %d, want %d", res.Size, sz.n)
				}
				got := sha256.New()
				if err := e.Get(ctx, res.Cap, got); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
					t.Fatal("round trip differs")
				}
				info, err := e.Stat(ctx, res.Cap)
				if err != nil || info.Size != uint64(sz.n) || info.K != 3 || info.M != 2 {
					t.Fatalf("stat = %+v, %v", info, err)
				}
			})
		}
	}
}

func TestConvergenceSameFileAddsNothing(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := blockstore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	e := New(s, testSecrets(2))
	data := randomBytes(3, 20<<20)
	r1, err := e.Put(ctx, bytes.NewReader(data), PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	before, diskBefore := countBlocks(t, s), packBytes(t, dir)
	r2, err := e.Put(ctx, bytes.NewReader(data), PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	after := countBlocks(t, s)
	if len(after) != len(before) {
		t.Fatalf("second put added %d blocks", len(after)-len(before))
	}
	if grew := packBytes(t, dir) - diskBefore; grew != 0 {
		t.Fatalf("second put wrote %d bytes to pack files", grew)
	}
	if r1.Cap.Encode() != r2.Cap.Encode() {
		t.Fatal("same file, same secret: capabilities differ")
	}
	// Random keys: a second put stores a second copy.
	r3, err := e.Put(ctx, bytes.NewReader(data), PutOptions{RandomKey: true})
	if err != nil {
		t.Fatal(err)
	}
	if r3.Cap.Encode() == r1.Cap.Encode() || len(countBlocks(t, s)) <= len(after) {
		t.Fatal("random-key put converged")
	}
	// Another user's secret: nothing shared.
	e2 := New(s, testSecrets(9))
	r4, err := e2.Put(ctx, bytes.NewReader(data), PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r4.Cap.Root() == r1.Cap.Root() {
		t.Fatal("different secrets converged")
	}
}

func TestOneChangedByteAddsOnlyNearbyChunks(t *testing.T) {
	if testing.Short() {
		t.Skip("100 MiB test skipped in -short")
	}
	ctx := context.Background()
	s := openStore(t)
	e := New(s, testSecrets(4))
	data := randomBytes(5, 100<<20)
	r1, err := e.Put(ctx, bytes.NewReader(data), PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	before := countBlocks(t, s)
	data[50<<20] ^= 0xff
	r2, err := e.Put(ctx, bytes.NewReader(data), PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	added := len(countBlocks(t, s)) - len(before)
	// At most two chunks change (the one holding the byte, and its
	// neighbour if the cut moved), each 5 shards, plus the manifest root.
	if added < 6 || added > 2*5+2 {
		t.Fatalf("one changed byte added %d blocks (want 6..12); chunks=%d", added, r2.Chunks)
	}
	var out bytes.Buffer
	if err := e.Get(ctx, r2.Cap, &out); err != nil || !bytes.Equal(out.Bytes(), data) {
		t.Fatalf("edited file does not round trip: %v", err)
	}
	out.Reset()
	data[50<<20] ^= 0xff
	if err := e.Get(ctx, r1.Cap, &out); err != nil || !bytes.Equal(out.Bytes(), data) {
		t.Fatalf("original file does not round trip: %v", err)
	}
}

func TestRangedRead(t *testing.T) {
	ctx := context.Background()
	e := New(openStore(t), testSecrets(6))
	data := randomBytes(7, 9<<20+123)
	res, err := e.Put(ctx, bytes.NewReader(data), PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range [][2]int64{{0, 1}, {0, 0}, {5, 100}, {1 << 20, 3 << 20}, {int64(len(data)) - 10, 100}, {int64(len(data)), 5}, {3, -1}} {
		var out bytes.Buffer
		if err := e.ReadRange(ctx, res.Cap, r[0], r[1], &out); err != nil {
			t.Fatal(err)
		}
		end := int64(len(data))
		if r[1] >= 0 && r[0]+r[1] < end {
			end = r[0] + r[1]
		}
		want := []byte{}
		if r[0] < end {
			want = data[r[0]:end]
		}
		if !bytes.Equal(out.Bytes(), want) {
			t.Fatalf("range %v: got %d bytes, want %d", r, out.Len(), len(want))
		}
	}
	if err := e.ReadRange(ctx, res.Cap, -1, 5, io.Discard); !errors.Is(err, ErrRange) {
		t.Fatalf("negative offset: %v", err)
	}
}

func TestRangedReadTouchesOnlyItsStripes(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	cb := &getCounter{Blocks: s}
	e := New(cb, testSecrets(6), withChunker(chunker.WithSizes(4<<10, 16<<10, 64<<10)))
	data := randomBytes(8, 4<<20)
	res, err := e.Put(ctx, bytes.NewReader(data), PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The chunks the range [2 MiB, 2 MiB+10) overlaps, and the tree's
	// nodes: the bound below is exact, so that fetching parity shards (or
	// a neighbouring chunk) with every data shard present fails it.
	const off, n = 2 << 20, 10
	sizes, err := e.Chunks(ctx, res.Cap)
	if err != nil {
		t.Fatal(err)
	}
	info, err := e.Stat(ctx, res.Cap)
	if err != nil {
		t.Fatal(err)
	}
	touched, pos := 0, uint64(0)
	for _, sz := range sizes {
		if pos < off+n && pos+sz > off {
			touched++
		}
		pos += sz
	}
	if touched == 0 {
		t.Fatal("the range overlaps no chunk")
	}
	e = New(cb, testSecrets(6), withChunker(chunker.WithSizes(4<<10, 16<<10, 64<<10))) // no opened nodes cached
	cb.n.Store(0)
	var out bytes.Buffer
	if err := e.ReadRange(ctx, res.Cap, off, n, &out); err != nil || !bytes.Equal(out.Bytes(), data[off:off+n]) {
		t.Fatalf("range read: %v", err)
	}
	// The root and interior nodes on the path (at most depth+1 per chunk
	// touched) plus the k = 3 data shards of each chunk touched.
	if got, most := cb.n.Load(), int64(touched*(3+info.Depth+1)); got == 0 || got > most {
		t.Fatalf("ranged read of 10 bytes fetched %d blocks, want at most %d (%d chunks, depth %d)", got, most, touched, info.Depth)
	}
}

func TestShardLoss(t *testing.T) {
	ctx := context.Background()
	for _, km := range [][2]int{{3, 2}, {1, 0}, {2, 1}, {4, 4}, {10, 4}} {
		k, m := km[0], km[1]
		t.Run(fmtKM(k, m), func(t *testing.T) {
			s := openStore(t)
			e := New(s, testSecrets(10))
			data := randomBytes(11, 6<<20)
			res, err := e.Put(ctx, bytes.NewReader(data), PutOptions{K: k, M: m})
			if err != nil {
				t.Fatal(err)
			}
			ents := leafEntries(t, e, res.Cap)
			coder, _ := erasure.New(k, m)
			rng := rand.New(rand.NewPCG(uint64(k), uint64(m)))
			// Lose M shards of every stripe.
			for _, ent := range ents {
				for si := range coder.Layout(ent.SealedLen) {
					for _, j := range rng.Perm(k + m)[:m] {
						if err := s.DeleteBlock(ctx, shardCID(ent.Shards[si*(k+m)+j])); err != nil {
							t.Fatal(err)
						}
					}
				}
			}
			var out bytes.Buffer
			if err := e.Get(ctx, res.Cap, &out); err != nil || !bytes.Equal(out.Bytes(), data) {
				t.Fatalf("after losing %d shards per stripe: %v", m, err)
			}
			// One more loss in one stripe of the third chunk: the error names it.
			ent := ents[2]
			for j := 0; j < k+m; j++ {
				if has, _ := s.Has(ctx, shardCID(ent.Shards[j])); has {
					s.DeleteBlock(ctx, shardCID(ent.Shards[j]))
					break
				}
			}
			err = e.Get(ctx, res.Cap, io.Discard)
			var se *erasure.StripeError
			if !errors.As(err, &se) || !errors.Is(err, erasure.ErrTooFewShards) || se.Stripe != 0 {
				t.Fatalf("after M+1 losses: %v", err)
			}
			if want := "chunk 2: erasure: stripe 0"; !bytes.Contains([]byte(err.Error()), []byte(want)) {
				t.Fatalf("error %q does not name %q", err, want)
			}
		})
	}
}

func TestCorruptShardDetectedAndRepaired(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	cb := &faultyBlocks{Blocks: s}
	e := New(cb, testSecrets(12))
	data := randomBytes(13, 3<<20)
	res, err := e.Put(ctx, bytes.NewReader(data), PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ents := leafEntries(t, e, res.Cap)
	// Data shard 1 of the first chunk reads back with one bit flipped, as
	// bit rot would, until it is rewritten.
	victim := shardCID(ents[0].Shards[1])
	cb.corrupt(victim)
	var out bytes.Buffer
	if err := e.Get(ctx, res.Cap, &out); err != nil || !bytes.Equal(out.Bytes(), data) {
		t.Fatalf("get with a corrupt shard: %v", err)
	}
	// Repaired: the shard was rewritten and matches its CID.
	if cb.isCorrupt(victim) {
		t.Fatal("corrupt shard was not rewritten")
	}
	blk, err := s.Get(ctx, victim)
	if err != nil {
		t.Fatal(err)
	}
	if err := blockstore.Verify(victim, blk.RawData()); err != nil {
		t.Fatalf("shard not repaired: %v", err)
	}
}

func TestWrongKeyIsAnError(t *testing.T) {
	ctx := context.Background()
	e := New(openStore(t), testSecrets(14))
	res, err := e.Put(ctx, bytes.NewReader(randomBytes(1, 1000)), PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wrong := keyring.NewReadCap(res.Cap.Root(), keyring.GenerateKey())
	var out bytes.Buffer
	if err := e.Get(ctx, wrong, &out); !errors.Is(err, format.ErrAuth) || out.Len() != 0 {
		t.Fatalf("wrong key: err=%v, %d bytes out", err, out.Len())
	}
	missing := keyring.NewReadCap([32]byte{1}, res.Cap.ReadKey())
	if err := e.Get(ctx, missing, &out); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing root: %v", err)
	}
}

func TestBadShardCounts(t *testing.T) {
	e := New(openStore(t), testSecrets(1))
	for _, km := range [][2]int{{0, 2}, {3, -1}, {200, 57}} {
		if _, err := e.Put(context.Background(), bytes.NewReader(nil), PutOptions{K: km[0], M: km[1]}); !errors.Is(err, erasure.ErrParams) {
			t.Errorf("%d+%d: %v", km[0], km[1], err)
		}
	}
}

func TestManyLevels(t *testing.T) {
	// Tiny chunks and small nodes make a deep manifest tree out of a few MiB.
	ctx := context.Background()
	e := New(openStore(t), testSecrets(15), withChunker(chunker.WithSizes(64, 128, 256)), withMaxNode(2048))
	data := randomBytes(16, 2<<20)
	res, err := e.Put(ctx, bytes.NewReader(data), PutOptions{K: 10, M: 6})
	if err != nil {
		t.Fatal(err)
	}
	info, err := e.Stat(ctx, res.Cap)
	if err != nil {
		t.Fatal(err)
	}
	if info.Depth < 3 {
		t.Fatalf("depth %d, want a tree of at least 3 levels", info.Depth)
	}
	var out bytes.Buffer
	if err := e.Get(ctx, res.Cap, &out); err != nil || !bytes.Equal(out.Bytes(), data) {
		t.Fatalf("deep tree round trip: %v (%d bytes, want %d; depth %d; first diff %d)", err, out.Len(), len(data), info.Depth, firstDiff(out.Bytes(), data))
	}
	out.Reset()
	if err := e.ReadRange(ctx, res.Cap, 1<<20+7, 1000, &out); err != nil || !bytes.Equal(out.Bytes(), data[1<<20+7:1<<20+1007]) {
		t.Fatalf("deep tree range: %v", err)
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestBitRotOnDiskIsRepaired flips a byte of a shard inside a pack file on
// disk: the store refuses it (CRC), get rebuilds the chunk from the other
// shards, and the shard is written again.
func TestBitRotOnDiskIsRepaired(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := blockstore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	e := New(s, testSecrets(17))
	data := randomBytes(18, 3<<20)
	res, err := e.Put(ctx, bytes.NewReader(data), PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	victim := shardCID(leafEntries(t, e, res.Cap)[0].Shards[0])
	blk, err := s.Get(ctx, victim)
	if err != nil {
		t.Fatal(err)
	}
	shard := blk.RawData()
	s.Close()
	packs, _ := filepath.Glob(filepath.Join(dir, "packs", "*.pack"))
	flipped := false
	for _, p := range packs {
		raw, _ := os.ReadFile(p)
		if i := bytes.Index(raw, shard[:4096]); i >= 0 {
			raw[i+100] ^= 0x40
			os.WriteFile(p, raw, 0o600)
			flipped = true
		}
	}
	if !flipped {
		t.Fatal("shard not found in any pack")
	}
	s, err = blockstore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Get(ctx, victim); !errors.Is(err, blockstore.ErrHashMismatch) {
		t.Fatalf("rotten shard served: %v", err)
	}
	e = New(s, testSecrets(17))
	var out bytes.Buffer
	if err := e.Get(ctx, res.Cap, &out); err != nil || !bytes.Equal(out.Bytes(), data) {
		t.Fatalf("get over bit rot: %v", err)
	}
	blk, err = s.Get(ctx, victim)
	if err != nil || !bytes.Equal(blk.RawData(), shard) {
		t.Fatalf("shard not rewritten: %v", err)
	}
}

// packBytes is the bytes written to a store's pack files.
func packBytes(t testing.TB, dir string) int64 {
	t.Helper()
	packs, _ := filepath.Glob(filepath.Join(dir, "packs", "*.pack"))
	var n int64
	for _, p := range packs {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		n += st.Size()
	}
	return n
}

// TestFirstByteCorruptionIsRepaired flips the suite byte (the first byte of
// data shard 0): the chunk fails before authentication, and is still rebuilt
// from parity.
func TestFirstByteCorruptionIsRepaired(t *testing.T) {
	ctx := context.Background()
	cb := &faultyBlocks{Blocks: openStore(t), first: true}
	e := New(cb, testSecrets(19))
	data := randomBytes(20, 2<<20)
	res, err := e.Put(ctx, bytes.NewReader(data), PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	victim := shardCID(leafEntries(t, e, res.Cap)[0].Shards[0])
	cb.corrupt(victim)
	var out bytes.Buffer
	if err := e.Get(ctx, res.Cap, &out); err != nil || !bytes.Equal(out.Bytes(), data) {
		t.Fatalf("get with a flipped suite byte: %v", err)
	}
	if cb.isCorrupt(victim) {
		t.Fatal("shard not rewritten")
	}
}

func TestRangeLengthDoesNotOverflow(t *testing.T) {
	ctx := context.Background()
	e := New(openStore(t), testSecrets(21))
	data := randomBytes(22, 32000)
	res, err := e.Put(ctx, bytes.NewReader(data), PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := e.ReadRange(ctx, res.Cap, 1, math.MaxInt64, &out); err != nil || !bytes.Equal(out.Bytes(), data[1:]) {
		t.Fatalf("huge length: %d bytes, %v", out.Len(), err)
	}
}

// blockingReader gives some bytes, then blocks until released, as a
// terminal does.
type blockingReader struct {
	gave    bool
	blocked chan struct{} // closed once a read blocks
	release chan struct{}
}

func (b *blockingReader) Read(p []byte) (int, error) {
	if !b.gave {
		b.gave = true
		return copy(p, make([]byte, 1000)), nil
	}
	close(b.blocked)
	<-b.release
	return 0, io.EOF
}

// TestCancelWhileReaderBlocks cancels a put whose input blocks: Put returns
// at once with the cancellation, without waiting for the reader.
func TestCancelWhileReaderBlocks(t *testing.T) {
	e := New(openStore(t), testSecrets(23))
	r := &blockingReader{blocked: make(chan struct{}), release: make(chan struct{})}
	defer close(r.release)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := e.Put(ctx, r, PutOptions{})
		done <- err
	}()
	// Cancel once the put is inside the blocked read: cancelled before,
	// the put may stop without ever reading, and this test would pass
	// whatever a blocked reader does to it.
	select {
	case <-r.blocked:
	case err := <-done:
		t.Fatalf("put returned before reading its input to the end: %v", err)
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled put: %v", err)
		}
	case <-time.After(30 * time.Second): // a hang, not a timing assertion
		t.Fatal("Put did not return after cancel while its reader blocked")
	}
}

// TestBadSourceIsAFailedShard: shard 0's holder serves corrupt bytes (the
// network drops them, as Net.Fetch does, and avoids the holder), shard 1 is
// found only by a deep fetch, shard 4 by nobody. The read counts shard 0 as
// failed, goes on to parity and the deep pass, and returns the file; the
// corrupt bytes are never used.
func TestBadSourceIsAFailedShard(t *testing.T) {
	ctx := context.Background()
	fn := &fakeNet{bs: openStore(t), corrupt: map[cid.Cid]bool{}, shallowMissed: map[cid.Cid]bool{}, gone: map[cid.Cid]bool{}}
	e := New(fn.bs, testSecrets(24), WithNetwork(fn))
	data := randomBytes(25, 1<<20)
	res, err := e.Put(ctx, bytes.NewReader(data), PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sh := leafEntries(t, New(fn.bs, testSecrets(24)), res.Cap)[0].Shards
	fn.corrupt[shardCID(sh[0])] = true
	fn.shallowMissed[shardCID(sh[1])] = true
	fn.gone[shardCID(sh[4])] = true
	var out bytes.Buffer
	if err := e.Get(ctx, res.Cap, &out); err != nil || !bytes.Equal(out.Bytes(), data) {
		t.Fatalf("get: %v", err)
	}
	if len(fn.reported) == 0 || fn.reported[0] != shardCID(sh[0]) {
		t.Fatalf("reported %v, want shard 0", fn.reported)
	}
}

// TestSlowHolderIsHedged: one data shard's holder never answers; the read
// asks for a parity shard instead and finishes without waiting for it.
func TestSlowHolderIsHedged(t *testing.T) {
	ctx := context.Background()
	fn := &fakeNet{bs: openStore(t), corrupt: map[cid.Cid]bool{}, shallowMissed: map[cid.Cid]bool{}, gone: map[cid.Cid]bool{}, slow: map[cid.Cid]bool{}}
	e := New(fn.bs, testSecrets(26), WithNetwork(fn))
	data := randomBytes(27, 3<<20)
	res, err := e.Put(ctx, bytes.NewReader(data), PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, ent := range leafEntries(t, New(fn.bs, testSecrets(26)), res.Cap) {
		fn.slow[shardCID(ent.Shards[1])] = true
	}
	done := make(chan error, 1)
	var out bytes.Buffer
	go func() { done <- e.Get(ctx, res.Cap, &out) }()
	select {
	case err := <-done:
		if err != nil || !bytes.Equal(out.Bytes(), data) {
			t.Fatalf("get around a silent holder: %v", err)
		}
	case <-time.After(30 * time.Second): // a hang, not a timing assertion
		t.Fatal("get waited for a holder that never answers")
	}
}

// TestRepairWritesCountAgainstQuota: the store's quota counts every write
// path, repair on read included: the counter matches what the store holds
// after a shard is rewritten, and a store at its quota still repairs (the
// rewrite gives the old copy's charge back first).
func TestRepairWritesCountAgainstQuota(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := blockstore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	data := randomBytes(41, 3<<20)
	res, err := New(s, testSecrets(40)).Put(ctx, bytes.NewReader(data), PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	used, _ := s.Used(ctx)
	s.Close()
	s, err = blockstore.Open(dir, blockstore.WithQuota(used)) // full to the byte
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cb := &faultyBlocks{Blocks: s}
	e := New(cb, testSecrets(40))
	victim := shardCID(leafEntries(t, e, res.Cap)[1].Shards[0])
	cb.corrupt(victim)
	var out bytes.Buffer
	if err := e.Get(ctx, res.Cap, &out); err != nil || !bytes.Equal(out.Bytes(), data) {
		t.Fatalf("get: %v", err)
	}
	if cb.isCorrupt(victim) {
		t.Fatal("the shard was not rewritten at the quota")
	}
	st, _ := s.Stats(ctx)
	if now, _ := s.Used(ctx); now != used || st.Charged() != used {
		t.Fatalf("after repair: counted %d, holds %d, was %d", now, st.Charged(), used)
	}
}

// shardCID is the CID of a shard a put made (BLAKE3, format.Version).
func shardCID(digest [32]byte) cid.Cid { return blockstore.CIDWith(blockstore.BLAKE3, digest) }
