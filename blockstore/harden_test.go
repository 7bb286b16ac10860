package blockstore

import (
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	ipld "github.com/ipfs/go-ipld-format"
	mh "github.com/multiformats/go-multihash"
)

// foreignForms are CIDs of "x" in forms umbra does not write: each would let
// a peer store a block under a name that does not pin its bytes (truncated
// digests), or one block under many names.
func foreignForms(t *testing.T, data []byte) map[string]cid.Cid {
	t.Helper()
	sum := sha256.Sum256(data)
	out := map[string]cid.Cid{}
	for _, n := range []int{0, 1, 2, 31} {
		h, err := mh.Encode(sum[:n], mh.SHA2_256)
		if err != nil {
			t.Fatal(err)
		}
		out["sha256 truncated to "+string(rune('0'+n%10))] = cid.NewCidV1(cid.Raw, h)
	}
	m5 := md5.Sum(data)
	h, _ := mh.Encode(m5[:], mh.MD5)
	out["md5"] = cid.NewCidV1(cid.Raw, h)
	s1 := sha1.Sum(data)
	h, _ = mh.Encode(s1[:], mh.SHA1)
	out["sha1"] = cid.NewCidV1(cid.Raw, h)
	b3 := BLAKE3.Sum(data)
	h, _ = mh.Encode(b3[:16], mh.BLAKE3)
	out["blake3 truncated to 16"] = cid.NewCidV1(cid.Raw, h)
	long := make([]byte, 64) // a blake3 multihash may name any length
	copy(long, b3[:])
	h, _ = mh.Encode(long, mh.BLAKE3)
	out["blake3 of 64 bytes"] = cid.NewCidV1(cid.Raw, h)
	b3full, _ := mh.Encode(b3[:], mh.BLAKE3)
	out["blake3 dag-pb codec"] = cid.NewCidV1(cid.DagProtobuf, b3full)
	full, _ := mh.Encode(sum[:], mh.SHA2_256)
	out["CIDv0"] = cid.NewCidV0(full)
	out["dag-pb codec"] = cid.NewCidV1(cid.DagProtobuf, full)
	return out
}

// TestOnlyUmbraCIDs is finding 4 of the hardening review (quota bypass): the
// store accepted any multihash, so truncated digests let one CID name many
// blocks. Only CIDv1, raw, full sha2-256 is accepted; every other form is
// refused on write and absent on read.
func TestOnlyUmbraCIDs(t *testing.T) {
	ctx := context.Background()
	s := openT(t, t.TempDir())
	data := []byte("x")
	for name, c := range foreignForms(t, data) {
		b, err := blocks.NewBlockWithCid(data, c)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Put(ctx, b); !errors.Is(err, ErrCIDForm) {
			t.Errorf("%s: put: %v", name, err)
		}
		if err := s.PutManyDeferred(ctx, []blocks.Block{b}); !errors.Is(err, ErrCIDForm) {
			t.Errorf("%s: deferred put: %v", name, err)
		}
		if err := CheckCID(c); !errors.Is(err, ErrCIDForm) {
			t.Errorf("%s: CheckCID: %v", name, err)
		}
	}
	// The same bytes under umbra's form, then every foreign form of them:
	// none reaches the stored block.
	good := rawBlock(data)
	if err := s.Put(ctx, good); err != nil {
		t.Fatal(err)
	}
	for name, c := range foreignForms(t, data) {
		if ok, err := s.Has(ctx, c); ok || err != nil {
			t.Errorf("%s: has %v %v", name, ok, err)
		}
		if _, err := s.Get(ctx, c); !ipld.IsNotFound(err) {
			t.Errorf("%s: get %v", name, err)
		}
	}
	st, _ := s.Stats(ctx)
	if st.Blocks != 1 {
		t.Fatalf("%d blocks stored, want 1", st.Blocks)
	}
}

// TestHeldBlockNotRewritten: a block already held, intact, is never written
// again, whatever size: no pack byte, no index write.
func TestHeldBlockNotRewritten(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openT(t, dir)
	small, large := rawBlock([]byte("small")), rawBlock(make([]byte, 200_000))
	if err := s.Put(ctx, small); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, large); err != nil {
		t.Fatal(err)
	}
	before := s.writes.Load()
	s.packs.mu.Lock()
	used := s.packs.size
	s.packs.mu.Unlock()
	for range 3 {
		if err := s.PutManyDeferred(ctx, []blocks.Block{small, large}); err != nil {
			t.Fatal(err)
		}
	}
	s.packs.mu.Lock()
	after := s.packs.size
	s.packs.mu.Unlock()
	if after != used || s.writes.Load() != before {
		t.Fatalf("re-put of held blocks wrote: pack %d → %d bytes, writes %d → %d", used, after, before, s.writes.Load())
	}
}

// TestSyncFloodCoalesced is finding 8a: every SYNC forced a WAL fsync. Now a
// sync with nothing new returns without touching the disk, and concurrent
// syncs share one.
func TestSyncFloodCoalesced(t *testing.T) {
	ctx := context.Background()
	s := openT(t, t.TempDir())
	if err := s.PutManyDeferred(ctx, []blocks.Block{rawBlock([]byte("one write"))}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 16 {
				if err := s.Sync(ctx); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if n := s.syncs.Load(); n != 1 {
		t.Fatalf("1024 syncs after one write reached the disk %d times, want 1", n)
	}
	// A write after the flood is still made durable by the next sync.
	b := rawBlock([]byte("second write"))
	if err := s.PutManyDeferred(ctx, []blocks.Block{b}); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if n := s.syncs.Load(); n != 2 {
		t.Fatalf("sync after a new write: %d disk syncs, want 2", n)
	}
}

// TestIndexFilesArePrivate is finding 8d: Pebble created its files 0644 and
// blocks/index 0755. Everything under the store is 0600/0700 whatever the
// umask, and an older store's modes are fixed at open.
func TestIndexFilesArePrivate(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	dir := t.TempDir()
	// What an earlier version left behind.
	if err := os.MkdirAll(filepath.Join(dir, "index"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "index", "stale"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 50 {
		if err := s.PutManyDeferred(ctx, []blocks.Block{rawBlock(make([]byte, 70_000+i))}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.db.Flush(); err != nil { // an sstable, a new manifest
		t.Fatal(err)
	}
	s.Close()
	n := 0
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, _ := d.Info()
		want := os.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		}
		if info.Mode().Perm() != want {
			t.Errorf("%s: mode %o, want %o", path, info.Mode().Perm(), want)
		}
		n++
		return nil
	})
	if err != nil || n < 6 {
		t.Fatalf("walked %d entries: %v", n, err)
	}
}

// TestDatastoreWritesDoNotDefeatSyncCoalescing is the review's finding on
// SYNC coalescing: a peer could re-put a DHT record (free) before each SYNC
// and make every SYNC a disk sync. Datastore writes are synced apart.
func TestDatastoreWritesDoNotDefeatSyncCoalescing(t *testing.T) {
	ctx := context.Background()
	s := openT(t, t.TempDir())
	if err := s.PutManyDeferred(ctx, []blocks.Block{rawBlock([]byte("a block"))}); err != nil {
		t.Fatal(err)
	}
	d := s.Datastore()
	for i := range 100 {
		if err := d.Put(ctx, ds.NewKey("/pk/x"), []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		if err := s.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.syncs.Load(); n != 1 {
		t.Fatalf("100 SYNCs after DHT writes reached the disk %d times, want 1", n)
	}
}
