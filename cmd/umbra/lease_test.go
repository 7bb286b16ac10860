package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/umbra-store/umbra/internal/api"
	"github.com/umbra-store/umbra/internal/config"
	"github.com/umbra-store/umbra/internal/testnet"
)

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
// every peer, the owner's node included), the capability answers "expired
// or not found", and a file put without --expire still reads.
func TestSelfDestruct(t *testing.T) {
	dir := t.TempDir()
	initWithConfig(t, dir, 5, func(_ int, c *config.Config) { c.Leases.GCGrace, c.Leases.GCInterval = "1s", "1h" })
	st := up(t, testnet.Options{Dir: dir, Nodes: 5})
	owner, reader := st.Nodes[0], st.Nodes[3]
	lastIn, lastData := randomFile(t, 1, 3<<20)
	lasting := strings.TrimSpace(mustRunArgs(t, owner.UmbraPath, "put", lastIn))
	before := make([]int, len(st.Nodes))
	for i, n := range st.Nodes {
		before[i] = blockCount(t, n)
	}
	in, data := randomFile(t, 2, 3<<20)
	put := time.Now()
	c := strings.TrimSpace(mustRunArgs(t, owner.UmbraPath, "put", "--expire", "2s", in))
	if got := mustRunArgs(t, reader.UmbraPath, "get", c, "-o", "-"); got != string(data) {
		t.Fatal("a file not yet expired reads back wrong")
	}
	added := 0
	for i, n := range st.Nodes {
		added += blockCount(t, n) - before[i]
	}
	if added < 5 {
		t.Fatalf("the put added %d blocks", added)
	}
	// The scenario is time passing: the expiry (whole seconds, from the
	// daemon's clock at the put), then the grace.
	time.Sleep(time.Until(put.Add(4500 * time.Millisecond)))
	for i, n := range st.Nodes {
		mustRunArgs(t, n.UmbraPath, "gc")
		if got := blockCount(t, n); got != before[i] {
			t.Fatalf("node %d holds %d blocks after GC, %d before the put", i, got, before[i])
		}
	}
	r := runArgs(t, reader.UmbraPath, nil, "get", c, "-o", "-")
	if r.code == 0 || !strings.Contains(r.stderr, "expired or not found") {
		t.Fatalf("get of an expired file: exit %d, %q", r.code, r.stderr)
	}
	if got := mustRunArgs(t, reader.UmbraPath, "get", lasting, "-o", "-"); got != string(lastData) {
		t.Fatal("a lasting file reads back wrong after GC")
	}
	if r := runArgs(t, owner.UmbraPath, nil, "put", "--expire", "1h", in, "x:y"); r.code == 0 {
		t.Fatal("--expire into a folder path accepted")
	}
}
