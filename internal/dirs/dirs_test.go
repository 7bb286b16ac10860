package dirs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"

	"github.com/umbra-store/umbra/blockstore"
	"github.com/umbra-store/umbra/dht"
	"github.com/umbra-store/umbra/internal/engine"
	"github.com/umbra-store/umbra/internal/format"
	"github.com/umbra-store/umbra/internal/kind"
	"github.com/umbra-store/umbra/internal/network"
	"github.com/umbra-store/umbra/internal/randstream"
	"github.com/umbra-store/umbra/keyring"
)

// mapAliases is an alias table in memory.
type mapAliases map[string]string

func (m mapAliases) Lookup(name string) (string, bool, error) {
	c, ok := m[name]
	return c, ok, nil
}

// offline is a one-node store on disk: a block store, an engine without
// network and a keeper of records.
type offline struct {
	svc     *Service
	aliases mapAliases
	store   *blockstore.Store
	keeper  *dht.Keeper
}

func newOffline(t *testing.T) *offline {
	t.Helper()
	st, err := blockstore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	eng := engine.New(st, keyring.NewSecrets(keyring.GenerateKey()))
	k := dht.NewKeeper(dssync.MutexWrap(st.Datastore()))
	a := mapAliases{}
	return &offline{svc: New(eng, network.LocalFolders{K: k}, a, Options{}), aliases: a, store: st, keeper: k}
}

// newFolder makes a folder with alias name.
func (o *offline) newFolder(t *testing.T, name string) string {
	t.Helper()
	c, err := o.svc.Mkdir(context.Background(), "", false)
	if err != nil {
		t.Fatal(err)
	}
	o.aliases[name] = c
	return c
}

func (o *offline) put(t *testing.T, data []byte, path string) {
	t.Helper()
	if _, err := o.svc.PutFile(context.Background(), bytes.NewReader(data), path, "", FileMeta{}, engine.PutOptions{}); err != nil {
		t.Fatalf("put %s: %v", path, err)
	}
}

func (o *offline) read(t *testing.T, path string) []byte {
	t.Helper()
	f, err := o.svc.OpenFile(context.Background(), path)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	if f.Cap == nil {
		return f.Inline
	}
	var b bytes.Buffer
	if err := o.svc.eng.Get(context.Background(), *f.Cap, &b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func names(t *testing.T, o *offline, path string) string {
	t.Helper()
	es, err := o.svc.List(context.Background(), path)
	if err != nil {
		t.Fatalf("ls %s: %v", path, err)
	}
	var out []string
	for _, e := range es {
		n := e.Name
		if e.Kind == "folder" {
			n += "/"
		}
		out = append(out, n)
	}
	return strings.Join(out, " ")
}

func TestFolderOperations(t *testing.T) {
	o := newOffline(t)
	ctx := context.Background()
	o.newFolder(t, "home")
	if _, err := o.svc.Mkdir(ctx, "home:a/b", false); !errors.Is(err, ErrNotFound) {
		t.Fatalf("mkdir without parent: %v", err)
	}
	if _, err := o.svc.Mkdir(ctx, "home:a/b", true); err != nil {
		t.Fatal(err)
	}
	if _, err := o.svc.Mkdir(ctx, "home:a", false); !errors.Is(err, ErrExists) {
		t.Fatalf("mkdir of an existing folder: %v", err)
	}
	small := []byte("hello")
	big := randstream.Bytes(1, 300<<10)
	o.put(t, small, "home:a/small.txt")
	o.put(t, big, "home:a/b/big.bin")
	if got := names(t, o, "home:a"); got != "b/ small.txt" {
		t.Fatalf("ls a: %q", got)
	}
	if !bytes.Equal(o.read(t, "home:a/small.txt"), small) || !bytes.Equal(o.read(t, "home:a/b/big.bin"), big) {
		t.Fatal("read back differs")
	}
	// Paths through a file, bad names.
	for _, p := range []string{"home:a/small.txt/x", "home:a/../a", "home:a/" + strings.Repeat("n", 256)} {
		if _, err := o.svc.List(ctx, p); err == nil {
			t.Errorf("ls %s: no error", p)
		}
	}
	if _, err := o.svc.List(ctx, "nosuch:x"); !errors.Is(err, ErrBadPath) {
		t.Fatalf("unknown alias: %v", err)
	}
	// Replace, move, rename, remove.
	o.put(t, []byte("v2"), "home:a/small.txt")
	if string(o.read(t, "home:a/small.txt")) != "v2" {
		t.Fatal("put did not replace")
	}
	if err := o.svc.Move(ctx, "home:a/small.txt", "home:a/b"); err != nil {
		t.Fatal(err)
	}
	if err := o.svc.Move(ctx, "home:a/b/small.txt", "home:a/b/renamed.txt"); err != nil {
		t.Fatal(err)
	}
	if got := names(t, o, "home:a/b"); got != "big.bin renamed.txt" {
		t.Fatalf("after moves: %q", got)
	}
	if err := o.svc.Remove(ctx, "home:a/b", false); !errors.Is(err, ErrIsDir) {
		t.Fatalf("rm of a folder without -r: %v", err)
	}
	if err := o.svc.Move(ctx, "home:a/b", "home:moved"); err != nil {
		t.Fatal(err)
	}
	// A moved folder stays writable: its seed was sealed again.
	o.put(t, []byte("x"), "home:moved/new")
	if err := o.svc.Remove(ctx, "home:moved", true); err != nil {
		t.Fatal(err)
	}
	if got := names(t, o, "home:"); got != "a/" {
		t.Fatalf("root after rm: %q", got)
	}
}

// TestShareAndLink: a read capability of a subfolder reaches it and what
// is under it, nothing above or beside, and no write capability.
func TestShareAndLink(t *testing.T) {
	o := newOffline(t)
	ctx := context.Background()
	o.newFolder(t, "root")
	for _, p := range []string{"root:docs/inner", "root:private"} {
		if _, err := o.svc.Mkdir(ctx, p, true); err != nil {
			t.Fatal(err)
		}
	}
	o.put(t, []byte("secret"), "root:private/s.txt")
	o.put(t, []byte("doc"), "root:docs/inner/d.txt")
	rc, err := o.svc.Share(ctx, "root:docs", "read")
	if err != nil || !strings.HasPrefix(rc, "umbra:dr:") {
		t.Fatalf("share: %q %v", rc, err)
	}
	o.aliases["shared"] = rc
	if string(o.read(t, "shared:inner/d.txt")) != "doc" {
		t.Fatal("shared subtree unreadable")
	}
	for _, p := range []string{"shared:../private", "shared:private/s.txt"} {
		if _, err := o.svc.OpenFile(ctx, p); err == nil {
			t.Fatalf("%s reached from a docs/ read cap", p)
		}
	}
	es, _ := o.svc.List(ctx, "shared:")
	for _, e := range es {
		if e.Writable {
			t.Fatal("a read cap lists a writable folder")
		}
	}
	if _, err := o.svc.Share(ctx, "shared:inner", "write"); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("write cap from a read cap: %v", err)
	}
	if err := o.svc.Remove(ctx, "shared:inner/d.txt", false); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("rm through a read cap: %v", err)
	}
	// A verify capability lists nothing and reads nothing.
	vc, err := o.svc.Share(ctx, "root:", "verify")
	if err != nil || !strings.HasPrefix(vc, "umbra:dv:") {
		t.Fatal(err)
	}
	o.aliases["v"] = vc
	if _, err := o.svc.List(ctx, "v:"); !errors.Is(err, ErrVerifyOnly) {
		t.Fatalf("ls with a verify cap: %v", err)
	}
	if _, err := o.svc.OpenFile(ctx, "v:docs/inner/d.txt"); !errors.Is(err, ErrVerifyOnly) {
		t.Fatalf("read with a verify cap: %v", err)
	}
	// ln: a file by its capability, a folder read-only.
	fc, err := o.svc.Share(ctx, "root:docs/inner", "read")
	if err != nil {
		t.Fatal(err)
	}
	if err := o.svc.Link(ctx, fc, "root:linked"); err != nil {
		t.Fatal(err)
	}
	if string(o.read(t, "root:linked/d.txt")) != "doc" {
		t.Fatal("linked folder unreadable")
	}
	if err := o.svc.Remove(ctx, "root:linked/d.txt", false); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("a read-only link is writable: %v", err)
	}
}

// TestTreeRoundTrip puts a tree with odd names, empty folders and files
// around the inline limit, and gets it back: names, bytes, modes, mtimes.
func TestTreeRoundTrip(t *testing.T) {
	o := newOffline(t)
	ctx := context.Background()
	o.newFolder(t, "t")
	src := t.TempDir()
	files := map[string][]byte{
		"a.txt":                  []byte("a"),
		"empty":                  nil,
		"édition/漢字 ☃.txt":       []byte("unicode"),
		"deep/er/est/x.bin":      randstream.Bytes(2, format.MaxInline),
		"deep/er/y.bin":          randstream.Bytes(3, format.MaxInline+1),
		"deep/big.bin":           randstream.Bytes(4, 700<<10),
		"spaces and 'quotes'.md": []byte("q"),
	}
	mtime := time.Date(2020, 5, 6, 7, 8, 9, 123456789, time.UTC)
	for p, b := range files {
		full := filepath.Join(src, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, b, 0o640); err != nil {
			t.Fatal(err)
		}
		os.Chtimes(full, mtime, mtime)
	}
	os.Chmod(filepath.Join(src, "a.txt"), 0o755)
	os.MkdirAll(filepath.Join(src, "empty dir"), 0o750)
	os.Symlink("a.txt", filepath.Join(src, "link"))
	root, err := os.OpenRoot(src)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	res, err := o.svc.PutTree(ctx, root, "t:up", engine.PutOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Files != int64(len(files)) || len(res.Skipped) != 1 || res.Folders != 6 {
		t.Fatalf("put: %+v", res)
	}
	dst := t.TempDir()
	droot, _ := os.OpenRoot(dst)
	defer droot.Close()
	got, err := o.svc.GetTree(ctx, "t:up", droot, GetOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.Files != res.Files {
		t.Fatalf("get: %+v", got)
	}
	for p, b := range files {
		full := filepath.Join(dst, p)
		data, err := os.ReadFile(full)
		if err != nil || !bytes.Equal(data, b) {
			t.Fatalf("%s: %v", p, err)
		}
		st, _ := os.Stat(full)
		wantMode := os.FileMode(0o640)
		if p == "a.txt" {
			wantMode = 0o755
		}
		if st.Mode().Perm() != wantMode || !st.ModTime().Equal(mtime) {
			t.Fatalf("%s: mode %v mtime %v", p, st.Mode(), st.ModTime())
		}
	}
	if st, err := os.Stat(filepath.Join(dst, "empty dir")); err != nil || st.Mode().Perm() != 0o750 {
		t.Fatalf("empty dir: %v", err)
	}
	// Again into the same place: files exist, refused without force.
	if _, err := o.svc.GetTree(ctx, "t:up", droot, GetOptions{}, nil); err == nil {
		t.Fatal("get -r over existing files without force")
	}
}

// TestConcurrentWriters: writers of one folder, each with its own service
// (caches apart) on one holder, add files at once; all are there.
func TestConcurrentWriters(t *testing.T) {
	o := newOffline(t)
	c := o.newFolder(t, "shared")
	var svcs []*Service
	for range 4 {
		svcs = append(svcs, New(o.svc.eng, network.LocalFolders{K: o.keeper}, mapAliases{"shared": c}, Options{}))
	}
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i, s := range svcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 10 {
				name := string(rune('a'+i)) + string(rune('0'+j))
				if _, err := s.PutFile(context.Background(), strings.NewReader(name), "shared:"+name, "", FileMeta{}, engine.PutOptions{}); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	es, err := o.svc.List(context.Background(), "shared:")
	if err != nil || len(es) != 40 {
		t.Fatalf("%d entries, want 40: %v", len(es), err)
	}
}

func entry(name, data string, mtime int64) format.DirEntry {
	return format.DirEntry{Name: name, Kind: format.EntryInline, Data: []byte(data), Size: uint64(len(data)), Mode: 0o644, MTime: mtime}
}

func snapOf(es ...format.DirEntry) *format.Snapshot {
	s := &format.Snapshot{}
	for _, e := range es {
		s.Set(e)
	}
	return s
}

func show(s *format.Snapshot) string {
	var out []string
	for _, e := range s.Entries {
		out = append(out, e.Name+"="+string(e.Data))
	}
	return strings.Join(out, " ")
}

// TestMerge3: changes of both sides against their parent are kept; an
// entry both changed keeps the later mtime; a change beats a removal.
func TestMerge3(t *testing.T) {
	base := snapOf(entry("a", "1", 1), entry("b", "1", 1), entry("c", "1", 1), entry("d", "1", 1))
	a := snapOf(entry("b", "1", 1), entry("c", "A", 5), entry("d", "A", 2), entry("x", "A", 1)) // -a, c→A, d→A, +x
	b := snapOf(entry("a", "1", 1), entry("b", "1", 1), entry("c", "B", 3), entry("y", "B", 1)) // -d, c→B, +y
	if got := show(merge3(base, a, b)); got != "b=1 c=A d=A x=A y=B" {
		t.Fatalf("three-way: %s", got)
	}
	// Without a common parent: the union, nothing dropped.
	if got := show(merge3(nil, a, b)); got != "a=1 b=1 c=A d=A x=A y=B" {
		t.Fatalf("union: %s", got)
	}
}

// TestLinkCycle: a folder linked inside itself is refused by get -r, not
// followed for ever; ls still works.
func TestLinkCycle(t *testing.T) {
	o := newOffline(t)
	ctx := context.Background()
	c := o.newFolder(t, "h")
	if _, err := o.svc.Mkdir(ctx, "h:a", false); err != nil {
		t.Fatal(err)
	}
	if err := o.svc.Link(ctx, c, "h:a/loop"); err != nil {
		t.Fatal(err)
	}
	if got := names(t, o, "h:a/loop/a/loop/a"); got != "loop/" {
		t.Fatalf("ls through the loop: %q", got)
	}
	droot, _ := os.OpenRoot(t.TempDir())
	defer droot.Close()
	if _, err := o.svc.GetTree(ctx, "h:", droot, GetOptions{}, nil); !errors.Is(err, ErrCycle) {
		t.Fatalf("get -r of a cycle: %v", err)
	}
}

// TestRefresh: records with less than half their validity left are renewed
// (the folder and the writable folders under it), the others left alone.
func TestRefresh(t *testing.T) {
	o := newOffline(t)
	ctx := context.Background()
	c := o.newFolder(t, "h")
	if _, err := o.svc.Mkdir(ctx, "h:a/b", true); err != nil {
		t.Fatal(err)
	}
	w, _ := keyring.ParseCap(c)
	if n, err := o.svc.Refresh(ctx, w.(keyring.DirWriteCap)); n != 0 || err != nil {
		t.Fatalf("fresh records renewed: %d %v", n, err)
	}
	later := New(o.svc.eng, network.LocalFolders{K: o.keeper}, o.aliases, Options{Now: func() time.Time { return time.Now().Add(DefaultValidity * 3 / 4) }})
	if n, err := later.Refresh(ctx, w.(keyring.DirWriteCap)); n != 3 || err != nil {
		t.Fatalf("renewed %d of 3: %v", n, err)
	}
	rec, _ := o.keeper.Get(ctx, w.(keyring.DirWriteCap).ID())
	if rec.Expiry().Before(time.Now().Add(DefaultValidity)) {
		t.Fatal("expiry not pushed back")
	}
	if got := names(t, o, "h:a"); got != "b/" {
		t.Fatalf("content changed by a refresh: %q", got)
	}
}

// twoSides are the holders of two halves of a network: apart, a writer
// reaches its own side's keeper; healed, both.
type twoSides struct {
	keepers [2]*dht.Keeper
	side    int
	healed  *bool
}

func (t twoSides) reach() []*dht.Keeper {
	if *t.healed {
		return t.keepers[:]
	}
	return t.keepers[t.side : t.side+1]
}

func (t twoSides) Resolve(ctx context.Context, id [32]byte) ([]*format.Record, error) {
	var out []*format.Record
	for _, k := range t.reach() {
		r, err := k.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		if r != nil && (len(out) == 0 || !out[0].Equal(r)) {
			out = append(out, r)
		}
	}
	if len(out) == 2 && out[1].Supersedes(out[0]) {
		out[0], out[1] = out[1], out[0]
	}
	return out, nil
}

func (t twoSides) Publish(ctx context.Context, rec *format.Record) (network.Published, error) {
	res := network.Published{}
	for _, k := range t.reach() {
		res.Holders++
		if _, err := k.Offer(ctx, rec.Bytes()); err == nil {
			res.Accepted++
		}
	}
	return res, nil
}

// partition splits folder c's holders in two (o's keeper, and another
// given its record now) and returns a writer on each side, the other
// keeper, and the switch that heals the partition.
func partition(t *testing.T, o *offline, c string) (a, b *Service, other *dht.Keeper, healed *bool) {
	t.Helper()
	ctx := context.Background()
	other = dht.NewKeeper(dssync.MutexWrap(ds.NewMapDatastore()))
	w, _ := keyring.ParseCap(c)
	rec, err := o.keeper.Get(ctx, w.(keyring.DirWriteCap).ID())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Offer(ctx, rec.Bytes()); err != nil {
		t.Fatal(err)
	}
	healed = new(bool)
	side := func(i int) *Service {
		return New(o.svc.eng, twoSides{keepers: [2]*dht.Keeper{o.keeper, other}, side: i, healed: healed}, o.aliases, Options{})
	}
	return side(0), side(1), other, healed
}

// TestPartitionedWritersMerge: two writers apart each win with the holders
// they see; once healed, the next write keeps both sides' changes (and a
// removal made on one side stays removed).
func TestPartitionedWritersMerge(t *testing.T) {
	o := newOffline(t)
	ctx := context.Background()
	c := o.newFolder(t, "f")
	o.put(t, []byte("base"), "f:base")
	o.put(t, []byte("gone"), "f:gone")
	a, b, _, healed := partition(t, o, c)
	put := func(s *Service, name string) {
		if _, err := s.PutFile(ctx, strings.NewReader(name), "f:"+name, "", FileMeta{}, engine.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	put(a, "one")
	if err := b.Remove(ctx, "f:gone", false); err != nil {
		t.Fatal(err)
	}
	put(b, "two")
	put(b, "three")
	*healed = true
	put(a, "later")
	es, err := a.List(ctx, "f:")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range es {
		got = append(got, e.Name)
	}
	if strings.Join(got, " ") != "base later one three two" {
		t.Fatalf("after healing: %v", got)
	}
}

// TestParentHiddenFromReaders: a snapshot's parent opens for writers only:
// a reader cannot walk back to versions before the one it is given.
func TestParentHiddenFromReaders(t *testing.T) {
	o := newOffline(t)
	ctx := context.Background()
	c := o.newFolder(t, "f")
	o.put(t, []byte("password=hunter2"), "f:creds.txt")
	if err := o.svc.Remove(ctx, "f:creds.txt", false); err != nil {
		t.Fatal(err)
	}
	w, _ := keyring.ParseCap(c)
	wc := w.(keyring.DirWriteCap)
	rec, _ := o.keeper.Get(ctx, wc.ID())
	ptr, err := rec.Open(wc.Read())
	if err != nil {
		t.Fatal(err)
	}
	snap, err := o.svc.readSnapshot(ctx, ptr.Snapshot)
	if err != nil || snap.Parent == nil {
		t.Fatalf("no parent: %v", err)
	}
	// The sealed key is not the parent's read key; the write key opens it.
	prev := wc.OpenParent(snap.Parent.Root, snap.Parent.SealedKey)
	if bytes.Equal(snap.Parent.SealedKey[:], prev.ReadKey().Bytes()) {
		t.Fatal("parent read key in the clear")
	}
	old, err := o.svc.readSnapshot(ctx, prev)
	if err != nil || len(old.Entries) != 1 {
		t.Fatalf("writer cannot open the parent: %v", err)
	}
	// What a reader holds (the snapshot bytes) opens nothing older.
	asKey, _ := keyring.KeyFromBytes(snap.Parent.SealedKey[:])
	if _, err := o.svc.fetchSnapshot(ctx, keyring.NewReadCap(snap.Parent.Root, asKey)); err == nil {
		t.Fatal("the parent opened with what a reader sees")
	}
}

// TestCacheNeedsTheKey: a record naming another folder's snapshot root
// with a key of its own opens nothing, though that snapshot is cached.
func TestCacheNeedsTheKey(t *testing.T) {
	o := newOffline(t)
	ctx := context.Background()
	c := o.newFolder(t, "private")
	o.put(t, []byte("TOP SECRET"), "private:secret.txt")
	names(t, o, "private:") // cached now
	w, _ := keyring.ParseCap(c)
	rec, _ := o.keeper.Get(ctx, w.(keyring.DirWriteCap).ID())
	ptr, _ := rec.Open(w.(keyring.DirWriteCap).Read())
	att := keyring.GenerateDirWriteCap()
	forged := format.SignRecord(att, 7, time.Now().Add(time.Hour), format.Pointer{Snapshot: keyring.NewReadCap(ptr.Snapshot.Root(), keyring.GenerateKey())})
	if _, err := o.keeper.Offer(ctx, forged); err != nil {
		t.Fatal(err)
	}
	o.aliases["att"] = att.Encode()
	if es, err := o.svc.List(ctx, "att:"); err == nil {
		t.Fatalf("another folder's cached snapshot served: %v", es)
	}
	if n, _ := o.svc.Refresh(ctx, att); n != 0 {
		t.Fatal("refresh republished a snapshot it could not open")
	}
}

// TestGetTreeModes: setuid, setgid and sticky bits are never restored, and
// the umask applies.
func TestGetTreeModes(t *testing.T) {
	o := newOffline(t)
	ctx := context.Background()
	o.newFolder(t, "m")
	if _, err := o.svc.PutFile(ctx, strings.NewReader("#!/bin/sh"), "m:tool", "", FileMeta{Mode: 0o6777}, engine.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	droot, _ := os.OpenRoot(dst)
	defer droot.Close()
	if _, err := o.svc.GetTree(ctx, "m:", droot, GetOptions{Umask: 0o027}, nil); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dst, "tool"))
	if err != nil || st.Mode() != 0o750 {
		t.Fatalf("mode %v (%v), want 0750 and no special bits", st.Mode(), err)
	}
}

// TestGetTreeBounded: a folder linked into many places (no cycle) is
// counted before anything is made: past the limit, get -r stops.
func TestGetTreeBounded(t *testing.T) {
	o := newOffline(t)
	ctx := context.Background()
	o.newFolder(t, "a")
	if _, err := o.svc.Mkdir(ctx, "a:b", false); err != nil {
		t.Fatal(err)
	}
	bc, _ := o.svc.Share(ctx, "a:b", "read")
	for i := range 20 {
		if err := o.svc.Link(ctx, bc, fmt.Sprintf("a:b%02d", i)); err != nil {
			t.Fatal(err)
		}
	}
	defer func(f int) { maxTreeFolders = f }(maxTreeFolders)
	maxTreeFolders = 10
	dst := t.TempDir()
	droot, _ := os.OpenRoot(dst)
	defer droot.Close()
	if _, err := o.svc.GetTree(ctx, "a:", droot, GetOptions{}, nil); !errors.Is(err, ErrBadPath) {
		t.Fatalf("a tree over the folder limit: %v", err)
	}
	if ents, _ := os.ReadDir(dst); len(ents) != 0 {
		t.Fatalf("%d folders made before the limit was found", len(ents))
	}
}

// TestMoveIntoItself: moving a folder into itself, or below, is refused
// and loses nothing.
func TestMoveIntoItself(t *testing.T) {
	o := newOffline(t)
	ctx := context.Background()
	o.newFolder(t, "h")
	if _, err := o.svc.Mkdir(ctx, "h:a/b", true); err != nil {
		t.Fatal(err)
	}
	for _, to := range []string{"h:a", "h:a/b", "h:a/b/c"} {
		if err := o.svc.Move(ctx, "h:a", to); !errors.Is(err, ErrBadPath) {
			t.Fatalf("mv h:a %s: %v", to, err)
		}
	}
	if got := names(t, o, "h:a"); got != "b/" {
		t.Fatalf("after refused moves: %q", got)
	}
}

// TestApply: many changes, one publish; made folders are writable.
func TestApply(t *testing.T) {
	o := newOffline(t)
	ctx := context.Background()
	c := o.newFolder(t, "h")
	o.put(t, []byte("old"), "h:gone")
	w, _ := keyring.ParseCap(c)
	before, _ := o.keeper.Get(ctx, w.(keyring.DirWriteCap).ID())
	big, err := o.svc.eng.Put(ctx, bytes.NewReader(randstream.Bytes(5, 10000)), engine.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	made, err := o.svc.Apply(ctx, "h:", []Op{
		{Kind: "set", Name: "small", Data: []byte("hi"), Mode: 0o600},
		{Kind: "set", Name: "big", Ref: big.Cap.Encode(), Size: 10000, Mode: 0o644},
		{Kind: "mkdir", Name: "sub", Mode: 0o755},
		{Kind: "remove", Name: "gone"},
	})
	if err != nil {
		t.Fatal(err)
	}
	after, _ := o.keeper.Get(ctx, w.(keyring.DirWriteCap).ID())
	if after.Seq() != before.Seq()+1 {
		t.Fatalf("%d publishes for one Apply", after.Seq()-before.Seq())
	}
	if got := names(t, o, "h:"); got != "big small sub/" {
		t.Fatalf("after apply: %q", got)
	}
	if _, err := o.svc.Apply(ctx, made["sub"], []Op{{Kind: "set", Name: "x", Data: []byte("x")}}); err != nil {
		t.Fatalf("made folder not writable: %v", err)
	}
	if got := names(t, o, "h:sub"); got != "x" {
		t.Fatalf("sub: %q", got)
	}
	// A mkdir of a name taken meanwhile (another writer, or a retry of a
	// mkdir whose answer was lost) does not replace what it holds.
	if _, err := o.svc.Apply(ctx, "h:", []Op{{Kind: "mkdir", Name: "sub", Mode: 0o755}}); !errors.Is(err, ErrExists) {
		t.Fatalf("mkdir over a folder: %v, want ErrExists", err)
	}
	if got := names(t, o, "h:sub"); got != "x" {
		t.Fatalf("sub after a refused mkdir: %q", got)
	}
}

// minority keeps records itself but reports that only it, of three
// holders, kept them (the others did not answer).
type minority struct{ Records }

func (m minority) Publish(ctx context.Context, rec *format.Record) (network.Published, error) {
	res, err := m.Records.Publish(ctx, rec)
	res.Holders = 3
	return res, err
}

// TestPublishWithoutMajority: a publish that a majority of holders did not
// keep, with no newer version kept instead, is no conflict to retry: it
// fails at once, Busy, saying how many kept it.
func TestPublishWithoutMajority(t *testing.T) {
	o := newOffline(t)
	s := New(o.svc.eng, minority{network.LocalFolders{K: o.keeper}}, o.aliases, Options{})
	_, err := s.Mkdir(context.Background(), "", false)
	if kind.Of(err) != kind.Busy || !strings.Contains(err.Error(), "1 of the folder's 3 holders") {
		t.Fatalf("mkdir: %v (kind %v)", err, kind.Of(err))
	}
}
