package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/umbra-store/umbra/internal/api"
	"github.com/umbra-store/umbra/internal/config"
	"github.com/umbra-store/umbra/internal/dirs"
	"github.com/umbra-store/umbra/internal/kind"
	"github.com/umbra-store/umbra/internal/node"
	"github.com/umbra-store/umbra/internal/randstream"
	"github.com/umbra-store/umbra/internal/shard"
	"github.com/umbra-store/umbra/internal/testnet"
	"github.com/umbra-store/umbra/keyring"
)

// oddNames are file and folder names a tree should survive.
var oddNames = []string{"é", "漢字", "space name", "emoji 😀", `quote'"`, "-dash", ".hidden", "tab\tname", "ünïcödé", "a.b.c", "...", "UPPER"}

// makeTree writes files files under dir in nested folders, with sizes from
// 0 B to 5 MiB (most small), odd names, modes, mtimes, and empty folders.
// It returns the bytes written.
func makeTree(t *testing.T, dir string, files int, seed uint64) int64 {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, seed))
	folders := []string{"."}
	var total int64
	for i := 0; i < files; i++ {
		if r.IntN(12) == 0 || len(folders) < 4 {
			parent := folders[r.IntN(len(folders))]
			name := fmt.Sprintf("%s %d", oddNames[r.IntN(len(oddNames))], len(folders))
			p := filepath.Join(parent, name)
			if err := os.Mkdir(filepath.Join(dir, p), 0o750); err != nil {
				t.Fatal(err)
			}
			folders = append(folders, p)
		}
		var size int
		switch n := r.IntN(100); {
		case n < 2:
			size = 1<<20 + r.IntN(4<<20) // 1 to 5 MiB
		case n < 12:
			size = 8<<10 + r.IntN(248<<10)
		case n < 15:
			size = 0
		default:
			size = r.IntN(8 << 10)
		}
		if i == 0 {
			size = 5 << 20
		}
		p := filepath.Join(dir, folders[r.IntN(len(folders))], fmt.Sprintf("%s-%04d", oddNames[r.IntN(len(oddNames))], i))
		mode := []os.FileMode{0o644, 0o600, 0o755, 0o640}[r.IntN(4)]
		if err := os.WriteFile(p, randstream.Bytes(byte(i), size), mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, mode) // the umask may have narrowed it
		mt := time.Unix(1_500_000_000+int64(r.IntN(100_000_000)), int64(r.IntN(1e9)))
		if err := os.Chtimes(p, mt, mt); err != nil {
			t.Fatal(err)
		}
		total += int64(size)
	}
	for _, name := range []string{"empty folder", "empty folder/nested empty"} {
		os.Mkdir(filepath.Join(dir, name), 0o700)
	}
	// Folders' times last: adding to a folder changes its mtime.
	for i := len(folders) - 1; i > 0; i-- {
		mt := time.Unix(1_400_000_000+int64(i), 0)
		os.Chtimes(filepath.Join(dir, folders[i]), mt, mt)
	}
	return total
}

// sameTree fails unless b holds what a holds: names, kinds, bytes, modes
// and mtimes (the top folders' own aside).
func sameTree(t *testing.T, a, b string) {
	t.Helper()
	count := 0
	err := filepath.WalkDir(a, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(a, p)
		if rel == "." {
			return nil
		}
		count++
		ia, _ := d.Info()
		ib, err := os.Lstat(filepath.Join(b, rel))
		if err != nil {
			return fmt.Errorf("%q missing: %w", rel, err)
		}
		if ia.Mode() != ib.Mode() || !ia.ModTime().Equal(ib.ModTime()) {
			return fmt.Errorf("%q: mode %v mtime %v, want %v %v", rel, ib.Mode(), ib.ModTime(), ia.Mode(), ia.ModTime())
		}
		if d.IsDir() {
			return nil
		}
		da, _ := os.ReadFile(p)
		db, _ := os.ReadFile(filepath.Join(b, rel))
		if !bytes.Equal(da, db) {
			return fmt.Errorf("%q: %d bytes differ from %d", rel, len(db), len(da))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	filepath.WalkDir(b, func(string, fs.DirEntry, error) error { n++; return nil })
	if n != count+1 {
		t.Fatalf("%s holds %d entries, %s %d", b, n-1, a, count)
	}
}

// shareTo gives node "to" the capability path names on node "from", as an
// alias (through standard input: never on a command line).
func shareTo(t *testing.T, from, to testnet.Node, path, alias string, extra ...string) string {
	t.Helper()
	c := strings.TrimSpace(mustRunArgs(t, from.UmbraPath, append([]string{"share", path}, extra...)...))
	if r := runArgs(t, to.UmbraPath, strings.NewReader(c+"\n"), "alias", "add", alias); r.code != 0 {
		t.Fatalf("alias add: %s", r.stderr)
	}
	return c
}

// TestFolderTreeAcrossNodes: a tree of 1,000 files put with put -r on node
// 0 of five is fetched with get -r on node 3 identical, and again after
// two nodes are killed.
func TestFolderTreeAcrossNodes(t *testing.T) {
	st := up(t, testnet.Options{Nodes: 5})
	src := t.TempDir()
	total := makeTree(t, src, 1000, 1)
	n0, n3 := st.Nodes[0], st.Nodes[3]
	mustRunArgs(t, n0.UmbraPath, "mkdir", "--alias", "home")
	out := mustRunArgs(t, n0.UmbraPath, "put", "-r", "--json", src, "home:photos")
	var res dirs.TreeResult
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Files != 1000 || res.Bytes != total {
		t.Fatalf("put -r: %s (%v)", out, err)
	}
	shareTo(t, n0, n3, "home:", "home")
	for round, victims := range [][]int{nil, {0, 1}} {
		for _, v := range victims {
			kill(t, st.Nodes[v])
		}
		dst := filepath.Join(t.TempDir(), "got")
		if r := runArgs(t, n3.UmbraPath, nil, "get", "-r", "home:photos", "-o", dst); r.code != 0 {
			t.Fatalf("round %d: get -r: %s", round, r.stderr)
		}
		sameTree(t, src, dst)
	}
}

// TestFolderConcurrentWriters: two nodes with the same write capability
// each add 50 files to one folder at the same time; a third node sees all
// 100.
func TestFolderConcurrentWriters(t *testing.T) {
	st := up(t, testnet.Options{Nodes: 5})
	a, b, c := st.Nodes[0], st.Nodes[1], st.Nodes[2]
	mustRunArgs(t, a.UmbraPath, "mkdir", "--alias", "shared")
	shareTo(t, a, b, "shared:", "shared", "--write")
	shareTo(t, a, c, "shared:", "shared")
	var wg sync.WaitGroup
	errs := make(chan string, 100)
	for i, n := range []testnet.Node{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 50 {
				f := writeFile(t, []byte(fmt.Sprintf("writer %d file %d", i, j)))
				if r := runArgs(t, n.UmbraPath, nil, "put", f, fmt.Sprintf("shared:w%d-%02d", i, j)); r.code != 0 {
					errs <- r.stderr
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
	out := mustRunArgs(t, c.UmbraPath, "ls", "shared:")
	if got := len(strings.Fields(out)); got != 100 {
		t.Fatalf("node 2 lists %d entries, want 100:\n%s", got, out)
	}
	for i := range 2 {
		for j := range 50 {
			want := fmt.Sprintf("writer %d file %d", i, j)
			if got := mustRunArgs(t, c.UmbraPath, "get", fmt.Sprintf("shared:w%d-%02d", i, j), "-o", "-"); got != want {
				t.Fatalf("w%d-%02d: %q", i, j, got)
			}
		}
	}
}

// TestFolderOutlivesOwner: with the owner's node stopped, another node
// lists and reads the folder, also once the DHT's copies of its record are
// past their age: the holders keep it.
func TestFolderOutlivesOwner(t *testing.T) {
	dir := t.TempDir()
	initWithConfig(t, dir, 5, func(_ int, c *config.Config) { c.Folders.DHTRecordAge = "2s" })
	st := up(t, testnet.Options{Dir: dir, Nodes: 5})
	owner, reader := st.Nodes[0], st.Nodes[4]
	mustRunArgs(t, owner.UmbraPath, "mkdir", "--alias", "f")
	mustRunArgs(t, owner.UmbraPath, "mkdir", "f:sub")
	in, data := randomFile(t, 7, 300<<10)
	mustRunArgs(t, owner.UmbraPath, "put", in, "f:sub/file.bin")
	shareTo(t, owner, reader, "f:", "f")
	kill(t, owner)
	check := func() {
		t.Helper()
		if out := mustRunArgs(t, reader.UmbraPath, "ls", "f:sub"); strings.TrimSpace(out) != "file.bin" {
			t.Fatalf("ls: %q", out)
		}
		if got := mustRunArgs(t, reader.UmbraPath, "get", "f:sub/file.bin", "-o", "-"); got != string(data) {
			t.Fatal("read back differs")
		}
	}
	check()
	// The scenario is time passing: three record ages, after which no DHT
	// peer returns the records it was given.
	time.Sleep(6 * time.Second)
	check()
}

// TestFolderCapabilityIsolation: a read capability of docs/ reaches docs/
// and what is under it, not its parent, its siblings or a write
// capability; a verify capability of the whole tree lists no name and
// reads no byte; and no name or plaintext window is on any peer's disk.
func TestFolderCapabilityIsolation(t *testing.T) {
	st := up(t, testnet.Options{Nodes: 5})
	owner, friend, checker := st.Nodes[0], st.Nodes[1], st.Nodes[2]
	phrase := []byte("FOLDER-PLAINTEXT-MARKER-the-quick-brown-fox-umbra|")
	data := bytes.Repeat(phrase, 2000)
	small := phrase[:40]
	mustRunArgs(t, owner.UmbraPath, "mkdir", "--alias", "root")
	mustRunArgs(t, owner.UmbraPath, "mkdir", "-p", "root:docs/inner-SECRETNAME-dir")
	mustRunArgs(t, owner.UmbraPath, "mkdir", "-p", "root:docs/inner-SECRETNAME-dir") // there already: no error, as mkdir -p
	mustRunArgs(t, owner.UmbraPath, "mkdir", "root:private-SECRETNAME-dir")
	if r := runArgs(t, owner.UmbraPath, nil, "mkdir", "root:private-SECRETNAME-dir"); r.code == 0 || !strings.Contains(r.stderr, "exists") {
		t.Fatalf("mkdir of a folder there already: exit %d, %q", r.code, r.stderr)
	}
	mustRunArgs(t, owner.UmbraPath, "put", writeFile(t, data), "root:docs/inner-SECRETNAME-dir/big-SECRETNAME.txt")
	mustRunArgs(t, owner.UmbraPath, "put", writeFile(t, small), "root:private-SECRETNAME-dir/small-SECRETNAME.txt")

	shareTo(t, owner, friend, "root:docs", "docs")
	if out := mustRunArgs(t, friend.UmbraPath, "ls", "docs:"); strings.TrimSpace(out) != "inner-SECRETNAME-dir/" {
		t.Fatalf("ls docs: %q", out)
	}
	if got := mustRunArgs(t, friend.UmbraPath, "get", "docs:inner-SECRETNAME-dir/big-SECRETNAME.txt", "-o", "-"); got != string(data) {
		t.Fatal("shared file differs")
	}
	for _, args := range [][]string{
		{"ls", "docs:.."}, {"ls", "docs:../private-SECRETNAME-dir"}, {"ls", "docs:private-SECRETNAME-dir"},
		{"share", "--write", "docs:"}, {"share", "--write", "docs:inner-SECRETNAME-dir"},
		{"put", writeFile(t, []byte("x")), "docs:new"}, {"rm", "-r", "docs:inner-SECRETNAME-dir"},
	} {
		if r := runArgs(t, friend.UmbraPath, nil, args...); r.code == 0 {
			t.Fatalf("umbra %v with a read capability of docs/ succeeded: %s", args, r.stdout)
		}
	}
	var es []dirs.Entry
	json.Unmarshal([]byte(mustRunArgs(t, friend.UmbraPath, "ls", "--json", "docs:")), &es)
	if len(es) != 1 || es[0].Writable {
		t.Fatalf("ls --json: %+v", es)
	}

	shareTo(t, owner, checker, "root:", "v", "--verify")
	for _, args := range [][]string{{"ls", "v:"}, {"ls", "v:docs"}, {"get", "v:docs/inner-SECRETNAME-dir/big-SECRETNAME.txt", "-o", "-"}, {"get", "-r", "v:", "-o", filepath.Join(t.TempDir(), "x")}} {
		r := runArgs(t, checker.UmbraPath, nil, args...)
		if r.code == 0 || strings.Contains(r.stdout+r.stderr, "SECRETNAME") || strings.Contains(r.stdout, "MARKER") {
			t.Fatalf("umbra %v with a verify capability: exit %d %q %q", args, r.code, r.stdout, r.stderr)
		}
	}
	cl, err := api.Dial(checker.UmbraPath)
	if err != nil {
		t.Fatal(err)
	}
	if es, err := cl.List(context.Background(), "v:"); err == nil || len(es) != 0 || kind.Of(err) != kind.Usage {
		t.Fatalf("API ls with a verify capability: %v %v", es, err)
	}

	// No name, no plaintext window, anywhere on any node's disk (records,
	// snapshots, shards, indexes).
	windows := map[[32]byte]bool{}
	for i := 0; i < len(phrase); i++ {
		windows[[32]byte(data[i:i+32])] = true
	}
	scanned := 0
	for _, n := range st.Nodes {
		filepath.WalkDir(n.UmbraPath, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || filepath.Base(p) == node.AliasesFile {
				return nil
			}
			raw, _ := os.ReadFile(p)
			scanned += len(raw)
			if bytes.Contains(raw, []byte("SECRETNAME")) {
				t.Errorf("%s holds a name", p)
			}
			for i := 0; i+32 <= len(raw); i++ {
				if windows[[32]byte(raw[i:i+32])] {
					t.Errorf("%s holds plaintext at %d", p, i)
					break
				}
			}
			return nil
		})
	}
	if scanned < len(data)*3/2 { // shards at 3+2: 5/3 of the data
		t.Fatalf("scanned %d bytes: where did the shards go?", scanned)
	}
}

// TestRogueCannotReplaceFolder: a rogue peer offers every node forged and
// stale records of a real folder, and as a holder answers with a forged
// one and claims newer records on every publish; the folder still reads
// right everywhere and its writer still writes.
func TestRogueCannotReplaceFolder(t *testing.T) {
	st := up(t, testnet.Options{Nodes: 5})
	owner, reader := st.Nodes[0], st.Nodes[2]
	mustRunArgs(t, owner.UmbraPath, "mkdir", "--alias", "f")
	rc := shareTo(t, owner, reader, "f:", "f")
	dr, err := keyring.ParseDirReadCap(rc)
	if err != nil {
		t.Fatal(err)
	}
	rogue := newRogue(t, st)
	ctx := context.Background()
	client := shard.NewClient(rogue.h)
	ai, _ := peer.AddrInfoFromString(owner.Addrs[0])
	stale, err := client.GetRecord(ctx, ai.ID, dr.ID()) // seq 1: the empty folder
	if err != nil || stale == nil {
		t.Fatalf("no record to replay: %v", err)
	}
	mustRunArgs(t, owner.UmbraPath, "put", writeFile(t, []byte("real")), "f:real.txt")
	forged := bytes.Clone(stale)
	binary.BigEndian.PutUint64(forged[33:41], 1<<40) // a huge seq, the signature now wrong
	rogue.mu.Lock()
	rogue.record = func(t shard.Type, _ []byte) []byte {
		if t == shard.TypeRecordGet {
			return append([]byte{shard.RecordKept}, forged...)
		}
		return append([]byte{shard.RecordNewer}, stale...)
	}
	rogue.mu.Unlock()
	for _, n := range st.Nodes {
		ai, _ := peer.AddrInfoFromString(n.Addrs[0])
		for name, rec := range map[string][]byte{"forged": forged, "garbage": []byte("nope")} {
			var re *shard.RemoteError
			if _, _, err := client.PutRecord(ctx, ai.ID, rec); !errors.As(err, &re) || re.Code != shard.CodeInvalid {
				t.Fatalf("node %d took a %s record: %v", n.Index, name, err)
			}
		}
		if _, ok, err := client.PutRecord(ctx, ai.ID, stale); ok || err != nil {
			t.Fatalf("node %d took a stale record: %v %v", n.Index, ok, err)
		}
	}
	if out := mustRunArgs(t, reader.UmbraPath, "ls", "f:"); strings.TrimSpace(out) != "real.txt" {
		t.Fatalf("after the rogue: %q", out)
	}
	mustRunArgs(t, owner.UmbraPath, "put", writeFile(t, []byte("more")), "f:more.txt")
	if out := mustRunArgs(t, reader.UmbraPath, "ls", "f:"); strings.Join(strings.Fields(out), " ") != "more.txt real.txt" {
		t.Fatalf("a write with a rogue holder: %q", out)
	}
	// A holder that never answers does not hold every resolve and
	// publish up to its timeout (3 s): a majority's answers are enough.
	stall := make(chan struct{})
	defer close(stall)
	rogue.mu.Lock()
	rogue.record = func(shard.Type, []byte) []byte { <-stall; return []byte{shard.RecordNone} }
	rogue.mu.Unlock()
	start := time.Now()
	mustRunArgs(t, owner.UmbraPath, "put", writeFile(t, []byte("again")), "f:again.txt")
	if out := mustRunArgs(t, reader.UmbraPath, "ls", "f:"); !strings.Contains(out, "again.txt") {
		t.Fatalf("with a stalling holder: %q", out)
	}
	if d := time.Since(start); d > 2500*time.Millisecond {
		t.Fatalf("a put and an ls took %v with one holder stalling", d)
	}
}

// TestFolderBadNames: malformed names and paths through a file are clear
// errors (exit 2, usage), and nothing is stored under them.
func TestFolderBadNames(t *testing.T) {
	n := newNode(t)
	mustRun(t, n, nil, "mkdir", "--alias", "h")
	f := writeFile(t, []byte("x"))
	mustRun(t, n, nil, "put", f, "h:file")
	for _, p := range []string{"h:..", "h:a/../b", "h:" + strings.Repeat("n", 256), "h:file/below", "nosuch:x", "bad alias:x"} {
		r := run(t, n, nil, "put", f, p)
		if r.code != 2 || r.stderr == "" {
			t.Errorf("put to %q: exit %d %q", p, r.code, r.stderr)
		}
	}
	if r := run(t, n, nil, "mkdir", "h:file/sub"); r.code != 2 || !strings.Contains(r.stderr, "not a folder") {
		t.Errorf("mkdir through a file: exit %d %q", r.code, r.stderr)
	}
	if r := run(t, n, nil, "mkdir", "h:file"); r.code != 1 || !strings.Contains(r.stderr, "exists") {
		t.Errorf("mkdir over a file: exit %d %q", r.code, r.stderr)
	}
	if out := mustRun(t, n, nil, "ls", "h:"); strings.TrimSpace(out) != "file" {
		t.Fatalf("after refused puts: %q", out)
	}
}
