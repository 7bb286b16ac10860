package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/umbra-store/umbra/internal/api"
	"github.com/umbra-store/umbra/internal/config"
	"github.com/umbra-store/umbra/internal/testnet"
)

// packSizes returns the size of each of a node's pack files.
func packSizes(t *testing.T, n testnet.Node) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	ms, _ := filepath.Glob(filepath.Join(n.UmbraPath, "blocks", "packs", "*.pack"))
	for _, m := range ms {
		if fi, err := os.Stat(m); err == nil {
			out[m] = fi.Size()
		}
	}
	return out
}

// newWindows returns 64-byte windows of what was appended to a node's
// packs since before (the blocks stored meanwhile), one every 16 KiB.
func newWindows(t *testing.T, n testnet.Node, before map[string]int64) [][]byte {
	t.Helper()
	var out [][]byte
	for m, size := range packSizes(t, n) {
		b, err := os.ReadFile(m)
		if err != nil {
			t.Fatal(err)
		}
		for off := before[m] + 4096; off+64 <= size; off += 16 << 10 {
			out = append(out, b[off:off+64])
		}
	}
	return out
}

// blockCount is a node's block count (umbra status).
func blockCount(t *testing.T, n testnet.Node) int {
	t.Helper()
	var st api.Status
	if err := json.Unmarshal([]byte(mustRunArgs(t, n.UmbraPath, "status", "--json")), &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks
}

// TestSelfDestruct: a file put with --expire reads until it expires; one GC
// past its expiry and the grace later, every node holds exactly the blocks
// it held before the put (its shards and manifest copies are gone from
// every peer, the owner's node included), no byte of them is left in any
// pack file (compacted), the capability answers "expired or not found",
// and a file put without --expire still reads.
func TestSelfDestruct(t *testing.T) {
	dir := t.TempDir()
	initWithConfig(t, dir, 5, func(_ int, c *config.Config) { c.Leases.GCGrace, c.Leases.GCInterval = "1s", "1h" })
	st := up(t, testnet.Options{Dir: dir, Nodes: 5})
	owner, reader := st.Nodes[0], st.Nodes[3]
	lastIn, lastData := randomFile(t, 1, 3<<20)
	lasting := strings.TrimSpace(mustRunArgs(t, owner.UmbraPath, "put", lastIn))
	docIn, docData := randomFile(t, 3, 200<<10)
	mustRunArgs(t, owner.UmbraPath, "mkdir", "--alias", "x")
	mustRunArgs(t, owner.UmbraPath, "put", docIn, "x:doc.bin")
	before := make([]int, len(st.Nodes))
	packs := make([]map[string]int64, len(st.Nodes))
	for i, n := range st.Nodes {
		before[i], packs[i] = blockCount(t, n), packSizes(t, n)
	}
	in, data := randomFile(t, 2, 3<<20)
	put := time.Now()
	c := strings.TrimSpace(mustRunArgs(t, owner.UmbraPath, "put", "--expire", "2s", in))
	// A link to a folder's file that expires, the file itself staying.
	link := strings.TrimSpace(mustRunArgs(t, owner.UmbraPath, "share", "--expire", "2s", "x:doc.bin"))
	if got := mustRunArgs(t, reader.UmbraPath, "get", link, "-o", "-"); got != string(docData) {
		t.Fatal("an expiring link reads back wrong")
	}
	// And of the whole folder: a copy of the tree, its records and blocks
	// expiring.
	flink := strings.TrimSpace(mustRunArgs(t, owner.UmbraPath, "share", "--expire", "2s", "x:"))
	if got := mustRunArgs(t, reader.UmbraPath, "get", flink+"/doc.bin", "-o", "-"); got != string(docData) {
		t.Fatal("an expiring folder link reads back wrong")
	}
	if got := mustRunArgs(t, reader.UmbraPath, "get", c, "-o", "-"); got != string(data) {
		t.Fatal("a file not yet expired reads back wrong")
	}
	added := 0
	var windows [][]byte // of the expiring file's shards, on every node
	for i, n := range st.Nodes {
		added += blockCount(t, n) - before[i]
		windows = append(windows, newWindows(t, n, packs[i])...)
	}
	if len(windows) < 100 {
		t.Fatalf("%d windows of the new shards", len(windows))
	}
	if added < 5 {
		t.Fatalf("the put added %d blocks", added)
	}
	// The scenario is time passing: the expiry (whole seconds, from the
	// daemon's clock at the put), then the grace.
	time.Sleep(time.Until(put.Add(5 * time.Second)))
	for i, n := range st.Nodes {
		mustRunArgs(t, n.UmbraPath, "gc")
		if got := blockCount(t, n); got != before[i] {
			t.Fatalf("node %d holds %d blocks after GC, %d before the put", i, got, before[i])
		}
	}
	// Compacted: no byte of those shards is left in any node's packs.
	for i, n := range st.Nodes {
		for m := range packSizes(t, n) {
			b, err := os.ReadFile(m)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range windows {
				if bytes.Contains(b, w) {
					t.Fatalf("node %d: %s still holds bytes of an expired shard", i, filepath.Base(m))
				}
			}
		}
	}
	r := runArgs(t, reader.UmbraPath, nil, "get", c, "-o", "-")
	if r.code == 0 || !strings.Contains(r.stderr, "expired or not found") {
		t.Fatalf("get of an expired file: exit %d, %q", r.code, r.stderr)
	}
	if got := mustRunArgs(t, reader.UmbraPath, "get", lasting, "-o", "-"); got != string(lastData) {
		t.Fatal("a lasting file reads back wrong after GC")
	}
	if r := runArgs(t, reader.UmbraPath, nil, "get", link, "-o", "-"); r.code == 0 || !strings.Contains(r.stderr, "expired or not found") {
		t.Fatalf("get of an expired link: exit %d, %q", r.code, r.stderr)
	}
	if got := mustRunArgs(t, owner.UmbraPath, "get", "x:doc.bin", "-o", "-"); got != string(docData) {
		t.Fatal("the shared file itself is gone with its link")
	}
	if r := runArgs(t, reader.UmbraPath, nil, "ls", flink); r.code == 0 || !strings.Contains(r.stderr, "expired or not found") {
		t.Fatalf("ls of an expired folder link: exit %d, %q", r.code, r.stderr)
	}
	if r := runArgs(t, owner.UmbraPath, nil, "put", "--expire", "1h", in, "x:y"); r.code == 0 {
		t.Fatal("--expire into a folder path accepted")
	}
}
