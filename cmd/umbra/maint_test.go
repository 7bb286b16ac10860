package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/umbra-store/umbra/internal/network"
	"github.com/umbra-store/umbra/internal/testnet"
)

func report(t *testing.T, n testnet.Node, args ...string) network.Report {
	t.Helper()
	var r network.Report
	t0 := time.Now()
	out := mustRunArgs(t, n.UmbraPath, append(args, "--json")...)
	t.Logf("%v: %v", args[0], time.Since(t0))
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%s: %v", out, err)
	}
	return r
}

// TestChurnRepair: on a 5-node testnet two holders die for good (killed,
// their directories deleted) and two new nodes join (testnet add); check
// finds the file degraded; repair, with only the verify capability,
// rebuilds every missing shard onto live peers that hold no other shard of
// the stripe; check finds it healthy; two more of the original nodes die
// and the file still reads back byte-identical.
func TestChurnRepair(t *testing.T) {
	st := up(t, testnet.Options{Nodes: 5})
	owner, keeper, reader := st.Nodes[0], st.Nodes[1], st.Nodes[2]
	in, data := randomFile(t, 21, 64<<20)
	fr := strings.TrimSpace(mustRunArgs(t, owner.UmbraPath, "put", in))
	fv := strings.TrimSpace(mustRunArgs(t, owner.UmbraPath, "cap", "verify", fr))
	// And a folder: its files and snapshots are checked and repaired with
	// --deep, through the read capability a reader was given.
	src := t.TempDir()
	makeTree(t, src, 40, 5)
	mustRunArgs(t, owner.UmbraPath, "mkdir", "--alias", "docs")
	mustRunArgs(t, owner.UmbraPath, "put", "-r", src, "docs:tree")
	shareTo(t, owner, reader, "docs:", "docs")
	if r := report(t, keeper, "check", "--verify", fv); r.Status != "healthy" || r.Healthy != r.Stripes || r.Stripes < 50 {
		t.Fatalf("after the put: %+v", r)
	}
	for _, n := range st.Nodes[3:] {
		kill(t, n)
		if err := os.RemoveAll(n.UmbraPath); err != nil {
			t.Fatal(err)
		}
	}
	var grown testnet.State
	if err := json.Unmarshal([]byte(mustRunArgs(t, "", "testnet", "add", "--dir", st.Dir, "--nodes", "2", "--json")), &grown); err != nil {
		t.Fatal(err)
	}
	if len(grown.Nodes) != 7 || !grown.Nodes[5].Running || !grown.Nodes[6].Running {
		t.Fatalf("testnet add: %+v", grown.Nodes)
	}
	r := report(t, keeper, "check", fv)
	if r.Status != "degraded" || r.Degraded == 0 || r.Lost != 0 {
		t.Fatalf("with two holders gone: %+v", r)
	}
	r = report(t, keeper, "repair", fv)
	if r.Repaired == 0 || r.Renewed == 0 || r.Status != "healthy" {
		t.Fatalf("repair: %+v", r)
	}
	if r := report(t, reader, "check", "--deep", "docs:"); r.Status != "degraded" || r.Files < 3 {
		t.Fatalf("the folder with two holders gone: %+v", r)
	}
	if r := report(t, reader, "repair", "--deep", "docs:"); r.Status != "healthy" || r.Repaired == 0 {
		t.Fatalf("the folder's repair: %+v", r)
	}
	if r := report(t, grown.Nodes[5], "check", "--verify", fv); r.Status != "healthy" || r.Healthy != r.Stripes {
		t.Fatalf("after the repair, from a new node: %+v", r)
	}
	kill(t, st.Nodes[0])
	kill(t, st.Nodes[1])
	if got := getBytes(t, reader, fr); !bytes.Equal(got, data) {
		t.Fatal("read back differs after two more of the original nodes died")
	}
	dst := filepath.Join(t.TempDir(), "got")
	if r := runArgs(t, reader.UmbraPath, nil, "get", "-r", "docs:tree", "-o", dst); r.code != 0 {
		t.Fatalf("get -r: %s", r.stderr)
	}
	sameTree(t, src, dst)
}

// TestDroppedShardsFound: a holder that acknowledges every STORE and keeps
// nothing is reported by check, and repair places its shards elsewhere.
func TestDroppedShardsFound(t *testing.T) {
	bin, env := faultyNodes(dropStoredEnv, 5)
	st := up(t, testnet.Options{Nodes: 6, NodeBin: bin, NodeEnv: env})
	owner, keeper := st.Nodes[0], st.Nodes[1]
	in, data := randomFile(t, 22, 12<<20)
	fr := strings.TrimSpace(mustRunArgs(t, owner.UmbraPath, "put", in))
	r := report(t, keeper, "check", fr)
	if r.Status != "degraded" || len(r.BadPeers) != 1 || r.BadPeers[0] != st.Nodes[5].PeerID {
		t.Fatalf("check with a dropping holder: %+v (it is %s)", r, st.Nodes[5].PeerID)
	}
	if r = report(t, keeper, "repair", fr); r.Repaired == 0 || r.Status != "healthy" {
		t.Fatalf("repair: %+v", r)
	}
	if r = report(t, keeper, "check", "--verify", fr); r.Status != "healthy" {
		t.Fatalf("after the repair: %+v", r)
	}
	kill(t, st.Nodes[2])
	kill(t, st.Nodes[3])
	if got := getBytes(t, st.Nodes[4], fr); !bytes.Equal(got, data) {
		t.Fatal("read back differs")
	}
}

// TestMaintenance: a node maintains what its user put, and a friend's node
// maintains it too with only its verify capability: after two holders die
// and two nodes join, the friend's maintenance run repairs it and renews
// (adds) the friend's own leases; status shows the run.
func TestMaintenance(t *testing.T) {
	st := up(t, testnet.Options{Nodes: 5})
	owner, friend := st.Nodes[0], st.Nodes[1]
	in, data := randomFile(t, 23, 8<<20)
	fr := strings.TrimSpace(mustRunArgs(t, owner.UmbraPath, "put", in))
	fv := strings.TrimSpace(mustRunArgs(t, owner.UmbraPath, "cap", "verify", fr))
	if out := mustRunArgs(t, owner.UmbraPath, "maintain", "list"); !strings.Contains(out, fv) || !strings.Contains(out, "put") {
		t.Fatalf("the owner's list: %q", out)
	}
	mustRunArgs(t, friend.UmbraPath, "maintain", "add", fv)
	// The owner's aliased folders are maintained too: their snapshots and
	// files.
	mustRunArgs(t, owner.UmbraPath, "mkdir", "--alias", "f")
	inF, _ := randomFile(t, 24, 300<<10)
	mustRunArgs(t, owner.UmbraPath, "put", inF, "f:a.bin")
	// The friend keeps the folder alive too, from its verify capability
	// alone (through its check list).
	dv := strings.TrimSpace(mustRunArgs(t, owner.UmbraPath, "share", "--verify", "f:"))
	mustRunArgs(t, friend.UmbraPath, "maintain", "add", dv)
	for _, n := range st.Nodes[3:] {
		kill(t, n)
		os.RemoveAll(n.UmbraPath)
	}
	mustRunArgs(t, "", "testnet", "add", "--dir", st.Dir, "--nodes", "2")
	var m struct {
		Files, Healthy, Repaired, Renewed int
	}
	if err := json.Unmarshal([]byte(mustRunArgs(t, friend.UmbraPath, "maintain", "run", "--json")), &m); err != nil {
		t.Fatal(err)
	}
	// The file; the folder's snapshot, check list and file.
	if m.Files != 4 || m.Healthy != 4 || m.Repaired == 0 || m.Renewed == 0 {
		t.Fatalf("the friend's run: %+v", m)
	}
	var s struct {
		Maintenance *struct{ Files int }
	}
	if err := json.Unmarshal([]byte(mustRunArgs(t, friend.UmbraPath, "status", "--json")), &s); err != nil || s.Maintenance == nil || s.Maintenance.Files != 4 {
		t.Fatalf("status: %+v %v", s.Maintenance, err)
	}
	var om struct{ Files, Healthy int }
	if err := json.Unmarshal([]byte(mustRunArgs(t, owner.UmbraPath, "maintain", "run", "--json")), &om); err != nil {
		t.Fatal(err)
	}
	if om.Files != 4 || om.Healthy != 4 { // the file, the folder's snapshot and check list, the file in it
		t.Fatalf("the owner's run: %+v", om)
	}
	if r := report(t, st.Nodes[2], "check", "--verify", fv); r.Status != "healthy" {
		t.Fatalf("after maintenance: %+v", r)
	}
	if got := getBytes(t, st.Nodes[2], fr); !bytes.Equal(got, data) {
		t.Fatal("read back differs")
	}
}
