package fuse

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dssync "github.com/ipfs/go-datastore/sync"
	"golang.org/x/sys/unix"

	"github.com/umbra-store/umbra/blockstore"
	"github.com/umbra-store/umbra/dht"
	"github.com/umbra-store/umbra/internal/dirs"
	"github.com/umbra-store/umbra/internal/engine"
	"github.com/umbra-store/umbra/internal/network"
	"github.com/umbra-store/umbra/internal/randstream"
	"github.com/umbra-store/umbra/keyring"
)

// needFUSE skips, saying why, when /dev/fuse cannot be opened.
func needFUSE(t *testing.T) {
	t.Helper()
	f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no FUSE here: /dev/fuse: %v", err)
	}
	f.Close()
}

// local is one node's store without a daemon, as a mount's Store and
// Writer (cmd/umbra's offline store does the same).
type local struct {
	eng  *engine.Engine
	dirs *dirs.Service
}

func (l *local) ListRefs(ctx context.Context, folder string) ([]dirs.Entry, error) {
	return l.dirs.ListRefs(ctx, folder)
}

func (l *local) Chunks(ctx context.Context, file string) ([]uint64, error) {
	c, err := keyring.ParseReadCap(file)
	if err != nil {
		return nil, err
	}
	return l.eng.Chunks(ctx, c)
}

func (l *local) GetRange(ctx context.Context, file string, off, length int64, w io.Writer) error {
	c, err := keyring.ParseReadCap(file)
	if err != nil {
		return err
	}
	return l.eng.ReadRange(ctx, c, off, length, w)
}

// ReleaseChunk poisons a buffer given back before the engine reuses it: a
// read still answering from it would return the poison.
func (l *local) ReleaseChunk(buf []byte) {
	for i := range buf[:cap(buf)] {
		buf[:cap(buf)][i] = 0xa5
	}
	l.eng.ReleaseChunk(buf)
}

func (l *local) PutData(ctx context.Context, r io.Reader) (string, uint64, error) {
	res, err := l.eng.Put(ctx, r, engine.PutOptions{})
	return res.Cap.Encode(), res.Size, err
}

func (l *local) PutFiles(ctx context.Context, files []*io.SectionReader) ([]string, error) {
	rs := make([]io.Reader, len(files))
	for i, f := range files {
		rs[i] = f
	}
	res, err := l.eng.PutFiles(ctx, engine.PutOptions{}, rs)
	refs := make([]string, len(res))
	for i, r := range res {
		refs[i] = r.Cap.Encode()
	}
	return refs, err
}

func (l *local) Apply(ctx context.Context, folder string, ops []dirs.Op) (map[string]string, error) {
	return l.dirs.Apply(ctx, folder, ops)
}

func newLocal(t *testing.T) *local {
	t.Helper()
	st, err := blockstore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	eng := engine.New(st, keyring.NewSecrets(keyring.GenerateKey()))
	k := dht.NewKeeper(dssync.MutexWrap(st.Datastore()))
	return &local{eng: eng, dirs: dirs.New(eng, network.LocalFolders{K: k}, nil, dirs.Options{})}
}

// mountNew makes a new folder on l and mounts it read-write.
func mountNew(t *testing.T, l *local) (string, string, *Mount) {
	t.Helper()
	return mountThrough(t, l, l, 0)
}

// mountThrough makes a new folder on l and mounts it read-write through
// st (l, or a wrapper of it), publishing every flush (0: the default).
func mountThrough(t *testing.T, l *local, st Store, flush time.Duration) (string, string, *Mount) {
	t.Helper()
	return mountOpts(t, l, st, Options{FlushInterval: flush})
}

// TestWritesPublished: what is written through a mount is in the folder
// once it is unmounted, and many files make one publish per interval.
func TestWritesPublished(t *testing.T) {
	needFUSE(t)
	l := newLocal(t)
	ctx := context.Background()
	c, err := l.dirs.Mkdir(ctx, "", false)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	mt, err := New(dir, l, Root{Ref: c, IsFolder: true, Writable: true}, Options{StageDir: t.TempDir(), FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	big := randstream.Bytes(7, 3<<20)
	must := func(err error) {
		t.Helper()
		if err != nil {
			mt.Unmount()
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "a", "b"), 0o755))
	for i := range 50 {
		must(os.WriteFile(filepath.Join(dir, "a", fmt.Sprintf("f%02d", i)), []byte(fmt.Sprint(i)), 0o640))
	}
	must(os.WriteFile(filepath.Join(dir, "a", "b", "big"), big, 0o600))
	var mid [][]byte // uploaded in batches
	for i := range 30 {
		mid = append(mid, randstream.Bytes(byte(100+i), 4097+i*9000))
		must(os.WriteFile(filepath.Join(dir, "a", "b", fmt.Sprintf("m%02d", i)), mid[i], 0o600))
	}
	must(os.Rename(filepath.Join(dir, "a", "f00"), filepath.Join(dir, "moved")))
	must(os.Remove(filepath.Join(dir, "a", "f01")))
	must(os.Chmod(filepath.Join(dir, "a", "f02"), 0o604))
	got, err := os.ReadFile(filepath.Join(dir, "a", "b", "big"))
	must(err)
	if !bytes.Equal(got, big) {
		t.Fatal("a staged file reads back wrong")
	}
	if err := mt.Unmount(); err != nil {
		t.Fatal(err)
	}
	es, err := l.dirs.List(ctx, c+"/a")
	if err != nil || len(es) != 49 { // b, f02..f49
		t.Fatalf("a lists %d entries: %v", len(es), err)
	}
	for _, e := range es {
		if e.Name == "f02" && e.Mode != 0o604 {
			t.Fatalf("chmod not published: %o", e.Mode)
		}
	}
	f, err := l.dirs.OpenFile(ctx, c+"/a/b/big")
	if err != nil || f.Cap == nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := l.eng.Get(ctx, *f.Cap, &buf); err != nil || !bytes.Equal(buf.Bytes(), big) {
		t.Fatalf("published big file: %v", err)
	}
	if m, err := l.dirs.OpenFile(ctx, c+"/moved"); err != nil || string(m.Inline) != "0" {
		t.Fatalf("moved: %v", err)
	}
	for i, want := range mid {
		f, err := l.dirs.OpenFile(ctx, fmt.Sprintf("%s/a/b/m%02d", c, i))
		if err != nil || f.Cap == nil {
			t.Fatalf("m%02d: %v", i, err)
		}
		var got bytes.Buffer
		if err := l.eng.Get(ctx, *f.Cap, &got); err != nil || !bytes.Equal(got.Bytes(), want) {
			t.Fatalf("m%02d reads back wrong: %v", i, err)
		}
	}
}

// folderWithFile makes a folder on l holding "f", n seeded bytes, and
// returns the folder and the bytes.
func folderWithFile(t *testing.T, l *local, seed byte, n int) (string, []byte) {
	t.Helper()
	ctx := context.Background()
	c, err := l.dirs.Mkdir(ctx, "", false)
	if err != nil {
		t.Fatal(err)
	}
	src := randstream.Bytes(seed, n)
	ref, size, err := l.PutData(ctx, bytes.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Apply(ctx, c, []dirs.Op{{Kind: "set", Name: "f", Ref: ref, Size: size, Mode: 0o644}}); err != nil {
		t.Fatal(err)
	}
	return c, src
}

// TestReadsUnderEviction: concurrent reads at random offsets through a
// cache far smaller than the file return the right bytes while chunk
// buffers are evicted and reused under them.
func TestReadsUnderEviction(t *testing.T) {
	needFUSE(t)
	l := newLocal(t)
	c, src := folderWithFile(t, l, 9, 24<<20)
	dir := t.TempDir()
	mt, err := New(dir, l, Root{Ref: c, IsFolder: true}, Options{CacheBytes: 3 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer mt.Unmount()
	errs := make(chan error, 4)
	for g := range 4 {
		go func() {
			f, err := os.Open(filepath.Join(dir, "f"))
			if err != nil {
				errs <- err
				return
			}
			defer f.Close()
			rng := rand.New(rand.NewPCG(uint64(g), 1))
			buf := make([]byte, 2<<20)
			for range 60 {
				n := 4096 + rng.IntN(2<<20-4096)
				off := rng.Int64N(int64(len(src) - n))
				// Out of the kernel's page cache: every read reaches the mount.
				if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
					errs <- err
					return
				}
				if _, err := f.ReadAt(buf[:n], off); err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(buf[:n], src[off:off+int64(n)]) {
					errs <- fmt.Errorf("%d bytes at %d read back wrong", n, off)
					return
				}
			}
			errs <- nil
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// counting counts the bytes a mount asks its store for.
type counting struct {
	*local
	fetched atomic.Int64
	mu      sync.Mutex
	ranges  [][2]int64 // each fetch's offset and length, in order
}

func (c *counting) GetRange(ctx context.Context, file string, off, length int64, w io.Writer) error {
	c.fetched.Add(length)
	c.mu.Lock()
	c.ranges = append(c.ranges, [2]int64{off, length})
	c.mu.Unlock()
	return c.local.GetRange(ctx, file, off, length, w)
}

// again lists the fetches that overlap an earlier one (for a failure's
// message): "#n off+len" each.
func (c *counting) again() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for i, r := range c.ranges {
		for _, e := range c.ranges[:i] {
			if r[0] < e[0]+e[1] && e[0] < r[0]+r[1] {
				out = append(out, fmt.Sprintf("#%d %d+%d (of %d fetches)", i, r[0], r[1], len(c.ranges)))
				break
			}
		}
	}
	return out
}

// TestSequentialReadFetchesOnce: a file read through once, the kernel's
// reads out of order and ahead of each other, is fetched once: read-ahead
// does not fetch again chunks a read behind the others finds read already.
func TestSequentialReadFetchesOnce(t *testing.T) {
	needFUSE(t)
	l := &counting{local: newLocal(t)}
	c, src := folderWithFile(t, l.local, 11, 96<<20)
	dir := t.TempDir()
	mt, err := New(dir, l, Root{Ref: c, IsFolder: true}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer mt.Unmount()
	got, err := os.ReadFile(filepath.Join(dir, "f"))
	if err != nil || !bytes.Equal(got, src) {
		t.Fatalf("read back: %v", err)
	}
	if n := l.fetched.Load(); n != int64(len(src)) {
		t.Fatalf("fetched %d bytes for a file of %d; fetched again: %v", n, len(src), l.again())
	}
}
