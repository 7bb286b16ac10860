package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	blocks "github.com/ipfs/go-block-format"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/umbra-store/umbra/blockstore"
	"github.com/umbra-store/umbra/internal/api"
	"github.com/umbra-store/umbra/internal/config"
	"github.com/umbra-store/umbra/internal/node"
	"github.com/umbra-store/umbra/internal/p2phost"
	"github.com/umbra-store/umbra/internal/randstream"
	"github.com/umbra-store/umbra/internal/shard"
	"github.com/umbra-store/umbra/internal/testnet"
)

// up starts a testnet of real daemon processes and stops it in cleanup.
func up(t *testing.T, o testnet.Options) testnet.State {
	t.Helper()
	o.Bin = umbraBin
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	st, err := testnet.Up(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := testnet.Down(o.Dir); err != nil {
			t.Errorf("testnet down: %v", err)
		}
		if t.Failed() {
			for _, n := range st.Nodes {
				if raw, err := os.ReadFile(n.Log); err == nil {
					t.Logf("node %d log:\n%s", n.Index, tail(string(raw), 3000))
				}
			}
		}
	})
	return st
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func kill(t *testing.T, n testnet.Node) {
	t.Helper()
	if err := syscall.Kill(n.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
}

func randomFile(t *testing.T, seed byte, size int) (string, []byte) {
	t.Helper()
	data := randstream.Bytes(seed, size)
	return writeFile(t, data), data
}

func getBytes(t *testing.T, n testnet.Node, capText string) []byte {
	t.Helper()
	r := runArgs(t, n.UmbraPath, nil, "get", capText, "-o", "-")
	if r.code != 0 {
		t.Fatalf("get on node %d: exit %d: %s", n.Index, r.code, r.stderr)
	}
	return []byte(r.stdout)
}

// TestNetworkSurvivesTwoKills is the core promise: 5 nodes, 3+2, a 64 MiB
// file put on node 0, two nodes killed with SIGKILL, the file read back on a
// third node byte for byte. Once with node 0 (the uploader) among the dead,
// once without.
func TestNetworkSurvivesTwoKills(t *testing.T) {
	for name, victims := range map[string][2]int{"uploader and one": {0, 1}, "two others": {3, 4}} {
		t.Run(name, func(t *testing.T) {
			st := up(t, testnet.Options{Nodes: 5})
			in, data := randomFile(t, 1, 64<<20)
			r := runArgs(t, st.Nodes[0].UmbraPath, nil, "put", "--json", in)
			if r.code != 0 {
				t.Fatalf("put: %s", r.stderr)
			}
			var res api.PutResult
			if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || res.Size != 64<<20 || len(res.Warnings) != 0 {
				t.Fatalf("put --json: %q %v", r.stdout, err)
			}
			// Every node holds a share: no stripe depends on one disk.
			for _, n := range st.Nodes {
				var s api.Status
				out := runArgs(t, n.UmbraPath, nil, "status", "--json")
				if err := json.Unmarshal([]byte(out.stdout), &s); err != nil || s.StorageUsed < 10<<20 {
					t.Fatalf("node %d holds %d bytes: shards not spread (%v)", n.Index, s.StorageUsed, err)
				}
			}
			kill(t, st.Nodes[victims[0]])
			kill(t, st.Nodes[victims[1]])
			if got := getBytes(t, st.Nodes[2], res.Cap); !bytes.Equal(got, data) {
				t.Fatalf("get after killing nodes %v: %d bytes, differs", victims, len(got))
			}
		})
	}
}

// TestCorruptPeersCannotSpoilAGet runs two peers that flip a bit in every
// block they serve (real daemons, the fault injected by the test binary:
// fault_test.go): with three honest holders of each stripe, gets still
// return the right bytes.
func TestCorruptPeersCannotSpoilAGet(t *testing.T) {
	bin, env := corruptNodes(3, 4)
	st := up(t, testnet.Options{Nodes: 5, NodeBin: bin, NodeEnv: env})
	in, data := randomFile(t, 2, 24<<20)
	capText := strings.TrimSpace(mustRunArgs(t, st.Nodes[0].UmbraPath, "put", in))
	for _, i := range []int{1, 2} {
		if got := getBytes(t, st.Nodes[i], capText); !bytes.Equal(got, data) {
			t.Fatalf("get on node %d returned wrong bytes", i)
		}
	}
	// The readers did meet the corrupt holders (24 MiB is some 20 chunks,
	// each with two of its five shards on them), and avoided them.
	for _, i := range []int{1, 2} {
		raw, _ := os.ReadFile(st.Nodes[i].Log)
		if !strings.Contains(string(raw), "served a block that does not match its CID") {
			t.Fatalf("node %d never fetched from a corrupt peer: the test did not exercise them", i)
		}
	}
}

func mustRunArgs(t *testing.T, node string, args ...string) string {
	t.Helper()
	r := runArgs(t, node, nil, args...)
	if r.code != 0 {
		t.Fatalf("umbra %v: exit %d: %s", args, r.code, r.stderr)
	}
	return r.stdout
}

func peerIDs(t *testing.T, n testnet.Node) map[string]bool {
	t.Helper()
	var ps []api.Peer
	if err := json.Unmarshal([]byte(mustRunArgs(t, n.UmbraPath, "peers", "--json")), &ps); err != nil {
		t.Fatal(err)
	}
	m := map[string]bool{}
	for _, p := range ps {
		m[p.ID] = true
	}
	return m
}

// initWithConfig prepares node directories with an edited config.
func initWithConfig(t testing.TB, dir string, n int, edit func(i int, c *config.Config)) {
	t.Helper()
	for i := 0; i < n; i++ {
		p := filepath.Join(dir, "node-"+string(rune('0'+i)))
		if _, err := node.Init(p, false); err != nil {
			t.Fatal(err)
		}
		c, err := config.Load(p)
		if err != nil {
			t.Fatal(err)
		}
		edit(i, &c)
		if err := config.Write(p, c); err != nil {
			t.Fatal(err)
		}
	}
}

// TestOutsidersCannotJoin checks both private-network mechanisms: a peer
// allowlist (connection gater) and a swarm key (pnet). An outsider that
// bootstraps to the private pair ends up connected to neither, so it can
// neither store on them nor fetch from them.
func TestOutsidersCannotJoin(t *testing.T) {
	cases := map[string]func(i int, c *config.Config){
		"swarm key": func(i int, c *config.Config) {
			c.Network.SwarmKey = strings.Repeat("ab", 32)
			c.Network.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
		},
	}
	for name, edit := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			initWithConfig(t, dir, 2, edit)
			private := up(t, testnet.Options{Dir: dir, Nodes: 2})
			outsiderDir := t.TempDir()
			initWithConfig(t, outsiderDir, 1, func(i int, c *config.Config) {
				if name == "swarm key" {
					c.Network.SwarmKey = strings.Repeat("cd", 32) // a different key
					c.Network.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
				}
			})
			outsider := up(t, testnet.Options{Dir: outsiderDir, Nodes: 1, NoMeshWait: true,
				Bootstrap: private.Nodes[0].Addrs})
			in, _ := randomFile(t, 3, 1<<20)
			capText := strings.TrimSpace(mustRunArgs(t, private.Nodes[0].UmbraPath, "put", "--allow-fewer-peers", in))
			o := outsider.Nodes[0]
			if peerIDs(t, o)[private.Nodes[0].PeerID] || peerIDs(t, private.Nodes[0])[o.PeerID] {
				t.Fatal("outsider is connected to the private network")
			}
			if r := runArgs(t, o.UmbraPath, nil, "get", capText, "-o", "-"); r.code != 3 || r.stdout != "" {
				t.Fatalf("outsider fetched: exit %d %q", r.code, r.stderr)
			}
			before := mustRunArgs(t, private.Nodes[0].UmbraPath, "status", "--json")
			if r := runArgs(t, o.UmbraPath, nil, "put", in); r.code == 0 || !strings.Contains(r.stderr, "too few peers") {
				t.Fatalf("outsider put: exit %d %q", r.code, r.stderr)
			}
			if after := mustRunArgs(t, private.Nodes[0].UmbraPath, "status", "--json"); after != before {
				t.Fatal("private node's store changed after the outsider's put")
			}
		})
	}
}

// TestAllowlist runs three nodes where only 0 and 1 allow each other: node 2
// cannot connect to either.
func TestAllowlist(t *testing.T) {
	dir := t.TempDir()
	initWithConfig(t, dir, 3, func(int, *config.Config) {})
	ids := make([]string, 3)
	for i := range ids {
		d, err := node.Open(filepath.Join(dir, "node-"+string(rune('0'+i))), nil)
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = peerIDFromKey(t, d)
		d.Close()
	}
	for i := 0; i < 2; i++ {
		p := filepath.Join(dir, "node-"+string(rune('0'+i)))
		c, _ := config.Load(p)
		c.Network.AllowPeers = ids[:2]
		config.Write(p, c)
	}
	st := up(t, testnet.Options{Dir: dir, Nodes: 3, NoMeshWait: true})
	in, _ := randomFile(t, 4, 1<<20)
	capText := strings.TrimSpace(mustRunArgs(t, st.Nodes[0].UmbraPath, "put", "--allow-fewer-peers", in))
	if !peerIDs(t, st.Nodes[0])[ids[1]] {
		t.Fatal("allowed peers 0 and 1 are not connected")
	}
	if peerIDs(t, st.Nodes[2])[ids[0]] || peerIDs(t, st.Nodes[2])[ids[1]] || peerIDs(t, st.Nodes[0])[ids[2]] {
		t.Fatal("a peer outside the allowlist is connected")
	}
	if r := runArgs(t, st.Nodes[2].UmbraPath, nil, "get", capText, "-o", "-"); r.code != 3 {
		t.Fatalf("outsider fetched: exit %d %q", r.code, r.stderr)
	}
}

// TestQuotaPlacesElsewhere gives node 4 a 1 MiB quota: a 16 MiB put still
// succeeds, and node 4 stays within its quota.
func TestQuotaPlacesElsewhere(t *testing.T) {
	dir := t.TempDir()
	initWithConfig(t, dir, 5, func(i int, c *config.Config) {
		if i == 4 {
			c.Storage.MaxBytes = 1 << 20
		}
	})
	st := up(t, testnet.Options{Dir: dir, Nodes: 5})
	in, data := randomFile(t, 5, 16<<20)
	capText := strings.TrimSpace(mustRunArgs(t, st.Nodes[0].UmbraPath, "put", in))
	var s api.Status
	json.Unmarshal([]byte(mustRunArgs(t, st.Nodes[4].UmbraPath, "status", "--json")), &s)
	if s.StorageUsed > 1<<20 {
		t.Fatalf("node 4 holds %d bytes over its 1 MiB quota", s.StorageUsed)
	}
	if got := getBytes(t, st.Nodes[1], capText); !bytes.Equal(got, data) {
		t.Fatal("file placed around a full peer does not read back")
	}
}

// TestKillReceiverDuringPut kills a storage node with SIGKILL while a large
// put streams, restarts it, and checks that every block it holds matches its
// CID; the put, retried, then succeeds.
func TestKillReceiverDuringPut(t *testing.T) {
	if testing.Short() {
		t.Skip("large put skipped in -short")
	}
	dir := t.TempDir()
	st := up(t, testnet.Options{Dir: dir, Nodes: 5})
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(umbraBin, "put", "-")
	cmd.Env = append(os.Environ(), "UMBRA_PATH="+st.Nodes[0].UmbraPath)
	cmd.Stdin = pr
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pr.Close()
	src := randstream.New(6, 256<<20)
	buf := make([]byte, 1<<20)
	want := sha256.New()
	for i := 0; i < 256; i++ {
		src.Read(buf)
		want.Write(buf)
		if i == 96 {
			kill(t, st.Nodes[1]) // mid-stream
		}
		if _, err := pw.Write(buf); err != nil {
			break // the put gave up
		}
	}
	pw.Close()
	_ = cmd.Wait()
	// Restart the whole network on the same directories: node 1 reopens
	// its store after the crash.
	if err := testnet.Down(dir); err != nil {
		t.Fatal(err)
	}
	checkStore(t, st.Nodes[1].UmbraPath)
	st = up(t, testnet.Options{Dir: dir, Nodes: 5})
	in, data := randomFile(t, 7, 32<<20)
	capText := strings.TrimSpace(mustRunArgs(t, st.Nodes[0].UmbraPath, "put", in))
	if got := getBytes(t, st.Nodes[1], capText); !bytes.Equal(got, data) {
		t.Fatal("after restart: round trip differs")
	}
}

// checkStore opens a stopped node's store and checks every block.
func checkStore(t *testing.T, path string) {
	t.Helper()
	s, err := blockstore.Open(filepath.Join(path, node.BlocksDir))
	if err != nil {
		t.Fatalf("reopen after kill: %v", err)
	}
	defer s.Close()
	ctx := context.Background()
	ch, err := s.AllKeysChan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for c := range ch {
		b, err := s.Get(ctx, c)
		if err != nil {
			continue // refused: allowed
		}
		if err := blockstore.Verify(c, b.RawData()); err != nil {
			t.Fatalf("block %s served with wrong bytes", c)
		}
		n++
	}
	if n == 0 {
		t.Fatal("the killed node held no blocks: the test did not exercise it")
	}
}

func TestNoDaemonMessage(t *testing.T) {
	node := newNode(t)
	r := runArgs(t, node, strings.NewReader("x"), "put", "-")
	if r.code != 1 || !strings.Contains(r.stderr, "umbra daemon") || !strings.Contains(r.stderr, "--offline") {
		t.Fatalf("put without a daemon: %d %q", r.code, r.stderr)
	}
}

func peerIDFromKey(t *testing.T, n *node.Node) string {
	t.Helper()
	priv, err := crypto.UnmarshalEd25519PrivateKey(n.Keys.Identity.Private())
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return id.String()
}

// TestSecondDaemonRefused starts a daemon on a node directory that already
// has one: the second exits at once with a clear message.
func TestSecondDaemonRefused(t *testing.T) {
	st := up(t, testnet.Options{Nodes: 1})
	r := runArgs(t, st.Nodes[0].UmbraPath, nil, "daemon", "--listen", "/ip4/127.0.0.1/tcp/0")
	if r.code != 1 || !strings.Contains(r.stderr, "in use by another umbra process") {
		t.Fatalf("second daemon: exit %d %q", r.code, r.stderr)
	}
	// The first still serves.
	mustRunArgs(t, st.Nodes[0].UmbraPath, "status")
}

// TestAcceptAllowlist: node 4 stores only for node 1, so node 0's put goes
// to the others; node 4 refuses with a clear code and holds nothing of it.
func TestAcceptAllowlist(t *testing.T) {
	dir := t.TempDir()
	initWithConfig(t, dir, 5, func(int, *config.Config) {})
	d, err := node.Open(filepath.Join(dir, "node-1"), nil)
	if err != nil {
		t.Fatal(err)
	}
	id1 := peerIDFromKey(t, d)
	d.Close()
	p4 := filepath.Join(dir, "node-4")
	c, _ := config.Load(p4)
	c.Storage.Accept, c.Storage.AcceptPeers = "allowlist", []string{id1}
	config.Write(p4, c)
	st := up(t, testnet.Options{Dir: dir, Nodes: 5})
	in, data := randomFile(t, 8, 8<<20)
	capText := strings.TrimSpace(mustRunArgs(t, st.Nodes[0].UmbraPath, "put", in))
	var s api.Status
	json.Unmarshal([]byte(mustRunArgs(t, st.Nodes[4].UmbraPath, "status", "--json")), &s)
	if s.StorageUsed > 64<<10 { // manifest replicas are refused too; allow a few stray bytes
		t.Fatalf("node 4 stored %d bytes for a peer it does not accept", s.StorageUsed)
	}
	raw, _ := os.ReadFile(st.Nodes[0].Log)
	if !strings.Contains(string(raw), "refused") {
		t.Fatal("uploader did not log the refusal")
	}
	if got := getBytes(t, st.Nodes[2], capText); !bytes.Equal(got, data) {
		t.Fatal("round trip differs")
	}
}

// TestSyncedBlocksSurviveKill stores blocks on a real daemon over the shard
// protocol from a host in this test, syncs them, keeps storing, and kills
// the daemon with SIGKILL while stores are in flight. Restarted, the node
// serves every block a SYNC acknowledged, and whatever else it serves
// matches its CID.
// NB: SIGKILL keeps the kernel's page cache, so this is durability against
// a process crash (SYNC moved the bytes out of the daemon), not against
// power loss (fsync), which no test here can cut. What an unsynced store
// wrote (its index entry at least) stays in the daemon until a SYNC: none
// of them came back in this test's runs.
func TestSyncedBlocksSurviveKill(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st := up(t, testnet.Options{Dir: dir, Nodes: 1})
	_, key, _ := ed25519.GenerateKey(crand.Reader)
	h, err := p2phost.New(p2phost.Options{Key: key, Listen: []string{"/ip4/127.0.0.1/tcp/0"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	connect := func(n testnet.Node) peer.ID {
		t.Helper()
		ai, err := peer.AddrInfoFromString(n.Addrs[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := h.Connect(ctx, *ai); err != nil {
			t.Fatal(err)
		}
		return ai.ID
	}
	p := connect(st.Nodes[0])
	c := shard.NewClient(h)
	src := randstream.New(11, 1<<40)
	newBlock := func() blocks.Block {
		data := make([]byte, 256<<10)
		src.Read(data)
		b, _ := blockstore.NewBlock(data)
		return b
	}
	var synced []blocks.Block
	for range 32 {
		b := newBlock()
		if err := c.Store(ctx, p, b, shard.Lease{}); err != nil {
			t.Fatal(err)
		}
		synced = append(synced, b)
	}
	if err := c.Sync(ctx, p); err != nil {
		t.Fatal(err)
	}
	// Unsynced stores on four streams; the daemon dies under them.
	var acked atomic.Int64
	var more []blocks.Block
	for range 256 {
		more = append(more, newBlock())
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(more); i += 4 {
				if c.Store(ctx, p, more[i], shard.Lease{}) != nil {
					return
				}
				if acked.Add(1) == 16 {
					if err := syscall.Kill(st.Nodes[0].PID, syscall.SIGKILL); err != nil {
						t.Error(err)
					}
				}
			}
		}()
	}
	wg.Wait()
	if acked.Load() < 16 {
		t.Fatalf("only %d unsynced stores acknowledged before the kill", acked.Load())
	}
	if err := testnet.Down(dir); err != nil {
		t.Fatal(err)
	}
	checkStore(t, st.Nodes[0].UmbraPath)
	st = up(t, testnet.Options{Dir: dir, Nodes: 1})
	p = connect(st.Nodes[0])
	for i, b := range synced {
		got, err := c.Fetch(ctx, p, b.Cid(), 4<<20)
		if err != nil || !bytes.Equal(got, b.RawData()) {
			t.Fatalf("synced block %d after the kill: %v", i, err)
		}
	}
	served := 0
	for _, b := range more {
		got, err := c.Fetch(ctx, p, b.Cid(), 4<<20)
		var re *shard.RemoteError
		switch {
		case err == nil && bytes.Equal(got, b.RawData()):
			served++
		case errors.As(err, &re) && re.Code == shard.CodeNotFound:
		default:
			t.Fatalf("unsynced block after the kill: %v (%d bytes)", err, len(got))
		}
	}
	t.Logf("after the kill: %d synced blocks served, %d of %d unsynced ones", len(synced), served, len(more))
}
