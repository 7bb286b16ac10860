package network

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"

	blocks "github.com/ipfs/go-block-format"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/umbra-store/umbra/blockstore"
	"github.com/umbra-store/umbra/dht"
	"github.com/umbra-store/umbra/internal/p2phost"
	"github.com/umbra-store/umbra/internal/placement"
	"github.com/umbra-store/umbra/internal/retrieval"
	"github.com/umbra-store/umbra/internal/shard"
	"github.com/umbra-store/umbra/keyring"
)

type testNode struct {
	net   *Net
	h     host.Host
	store *blockstore.Store
	dht   *dht.DHT
	fetch *retrieval.Fetcher
	id    peer.ID
}

// newNodes starts n nodes on 127.0.0.1 as the daemon builds them — host,
// store (with quota, 0: none), DHT, shard server and client, retrieval
// (with bitswap if asked), placement — all connected to the first.
func newNodes(t *testing.T, n int, withBitswap bool, quota int64) []testNode {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	log := slog.New(slog.DiscardHandler)
	var out []testNode
	for i := 0; i < n; i++ {
		_, k, _ := ed25519.GenerateKey(rand.Reader)
		h, err := p2phost.New(p2phost.Options{Key: k, Listen: []string{"/ip4/127.0.0.1/tcp/0"}})
		if err != nil {
			t.Fatal(err)
		}
		st, err := blockstore.Open(t.TempDir(), blockstore.WithQuota(quota))
		if err != nil {
			t.Fatal(err)
		}
		d, err := dht.New(ctx, h, st.Datastore())
		if err != nil {
			t.Fatal(err)
		}
		shard.NewServer(h, st, shard.ServerOptions{Stored: d.AnnounceFrom, Log: log})
		client := shard.NewClient(h)
		var bs retrieval.BlockGetter
		if withBitswap {
			b := retrieval.NewBitswap(ctx, h, d, st)
			t.Cleanup(func() { b.Close() })
			bs = b
		}
		f := retrieval.New(h, st, client, d, bs, log)
		nt := New(h, placement.Deps{Self: h.ID(), Remote: client, Local: st, Ann: d, Log: log, LeaseKey: keyring.GenerateKey()}, f)
		t.Cleanup(func() { d.Close(); h.Close(); st.Close() })
		if i > 0 {
			if err := h.Connect(ctx, peer.AddrInfo{ID: out[0].id, Addrs: out[0].h.Addrs()}); err != nil {
				t.Fatal(err)
			}
		}
		out = append(out, testNode{net: nt, h: h, store: st, dht: d, fetch: f, id: h.ID()})
	}
	return out
}

// warmUp asks every other node from node 0 over the shard protocol: node 0
// is connected to all, and then knows that each speaks it.
func warmUp(t *testing.T, ns []testNode) {
	t.Helper()
	c := shard.NewClient(ns[0].h)
	b, _ := blockstore.NewBlock([]byte("warm up"))
	for _, n := range ns[1:] {
		if _, err := c.Has(context.Background(), n.id, b.Cid()); err != nil {
			t.Fatal(err)
		}
	}
}

// TestFetchOrder: a hinted holder serves a shallow fetch; without a hint a
// shallow fetch gives up; a deep fetch finds the block through bitswap when
// no provider record exists.
func TestFetchOrder(t *testing.T) {
	ctx := context.Background()
	ns := newNodes(t, 2, true, 0)
	b, _ := blockstore.NewBlock([]byte("held by node 1 only, never announced"))
	if err := ns[1].store.Put(ctx, b); err != nil {
		t.Fatal(err)
	}
	got, err := ns[0].net.Fetch(ctx, b.Cid(), 1<<20, []byte(ns[1].id), false, nil)
	if err != nil || string(got) != string(b.RawData()) {
		t.Fatalf("hinted shallow fetch: %v", err)
	}
	other, _ := blockstore.NewBlock([]byte("another block, also only on node 1"))
	ns[1].store.Put(ctx, other)
	if _, err := ns[0].net.Fetch(ctx, other.Cid(), 1<<20, nil, false, nil); err == nil {
		t.Fatal("shallow fetch without a hint searched the network")
	}
	got, err = ns[0].net.Fetch(ctx, other.Cid(), 1<<20, nil, true, nil)
	if err != nil || string(got) != string(other.RawData()) {
		t.Fatalf("deep fetch through bitswap: %v", err)
	}
}

// rogue replaces h's shard-protocol handler with answer, which gets each
// request frame and returns the response frame to send.
func rogue(h host.Host, answer func(f shard.Frame) (shard.Type, []byte)) {
	rogueStream(h, func(st network.Stream, f shard.Frame) error {
		t, payload := answer(f)
		return shard.WriteFrame(st, t, payload)
	})
}

// rogueStream is rogue with the stream's writing left to answer.
func rogueStream(h host.Host, answer func(st network.Stream, f shard.Frame) error) {
	h.SetStreamHandler(shard.Protocol, func(st network.Stream) {
		defer st.Close()
		r := bufio.NewReader(st)
		for {
			f, _, err := shard.ReadFrame(r, nil)
			if err != nil {
				return
			}
			if err := answer(st, f); err != nil {
				return
			}
		}
	})
}

// TestBadBytesAvoidPeer is the network half of finding 1 of the hardening
// review: a shallow fetch handed shard bytes over unhashed. Now the hinted
// peer's bytes are hashed; a peer that sends bytes not matching the CID
// (forged, or one byte too long: finding 3) is avoided and its bytes never
// returned, shallow or deep.
func TestBadBytesAvoidPeer(t *testing.T) {
	ctx := context.Background()
	for name, forge := range map[string]func([]byte) []byte{
		"forged":       func(b []byte) []byte { c := bytes.Clone(b); c[0] ^= 1; return c },
		"one too long": func(b []byte) []byte { return append(bytes.Clone(b), 0) },
	} {
		t.Run(name, func(t *testing.T) {
			ns := newNodes(t, 2, false, 0)
			b, _ := blockstore.NewBlock([]byte("some shard " + name))
			var asked atomic.Int64
			rogue(ns[1].h, func(f shard.Frame) (shard.Type, []byte) {
				asked.Add(1)
				return shard.TypeBlock, forge(b.RawData())
			})
			if got, err := ns[0].net.Fetch(ctx, b.Cid(), 1<<20, []byte(ns[1].id), false, nil); err == nil {
				t.Fatalf("forged bytes returned: %q", got)
			}
			if asked.Load() != 1 {
				t.Fatalf("the hinted peer was asked %d times", asked.Load())
			}
			// Avoided now: neither a shallow nor a deep fetch asks it again.
			for _, deep := range []bool{false, true} {
				if got, err := ns[0].net.Fetch(ctx, b.Cid(), 1<<20, []byte(ns[1].id), deep, nil); err == nil {
					t.Fatalf("deep=%v: forged bytes returned: %q", deep, got)
				}
			}
			if asked.Load() != 1 {
				t.Fatal("the peer that sent bad bytes is not avoided")
			}
		})
	}
}

// TestPlacementSpreadsAndRefuses: with 5 nodes a stripe lands on 5 distinct
// peers; with 2 a 3+2 put is refused unless allowed.
func TestPlacementSpreadsAndRefuses(t *testing.T) {
	ctx := context.Background()
	ns := newNodes(t, 5, false, 0)
	warmUp(t, ns)
	sess, err := ns[0].net.NewPutSession(3, 2, false, 0)
	if err != nil {
		t.Fatal(err)
	}
	stripe := testStripe(5, 1)
	holders, err := sess.PlaceStripe(ctx, stripe)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, h := range holders {
		seen[string(h)] = true
	}
	if len(seen) != 5 || len(sess.Warnings()) != 0 {
		t.Fatalf("5 shards on %d peers, warnings %v", len(seen), sess.Warnings())
	}
	if err := sess.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for i, b := range stripe {
		var holder *testNode
		for j := range ns {
			if string(holders[i]) == string(ns[j].id) {
				holder = &ns[j]
			}
		}
		if has, _ := holder.store.Has(ctx, b.Cid()); !has {
			t.Fatalf("shard %d missing on its holder", i)
		}
	}
	two := newNodes(t, 2, false, 0)
	if _, err := two[0].net.NewPutSession(3, 2, false, 0); !errors.Is(err, placement.ErrFewPeers) {
		t.Fatalf("2 peers for 3+2: %v", err)
	}
}

// TestPlacementNamesTheShortage: when every peer (this node included) is at
// its quota, placing a stripe fails with an error that says so.
func TestPlacementNamesTheShortage(t *testing.T) {
	ctx := context.Background()
	ns := newNodes(t, 3, false, 1) // room for no shard
	warmUp(t, ns)
	sess, err := ns[0].net.NewPutSession(2, 1, false, 0)
	if err != nil {
		t.Fatal(err)
	}
	stripe := testStripe(3, 9)
	_, err = sess.PlaceStripe(ctx, stripe)
	// This node (full locally) and the remote peers (ERROR "storage full")
	// are each named.
	if err == nil || !strings.Contains(err.Error(), "no peer accepted") ||
		!strings.Contains(err.Error(), ns[0].id.ShortString()+": full") ||
		!strings.Contains(err.Error(), ns[1].id.ShortString()+": peer: storage full") {
		t.Fatalf("all peers full: %v, want an error naming the shortage", err)
	}
	for _, n := range ns {
		for _, b := range stripe {
			if has, _ := n.store.Has(ctx, b.Cid()); has {
				t.Fatal("a full peer stored a shard")
			}
		}
	}
}

// TestEveryWriteCounted: the store's quota counter sees every write path a
// put takes — this node's own shards, peers' STOREs, manifest replicas —
// and matches what each store holds; a deep fetch through bitswap writes
// nothing (boxo's bitswap client does not store what it fetches).
func TestEveryWriteCounted(t *testing.T) {
	ctx := context.Background()
	ns := newNodes(t, 3, true, 1<<30)
	warmUp(t, ns)
	sess, err := ns[0].net.NewPutSession(2, 1, false, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sess.PlaceStripe(ctx, testStripe(3, 7)); err != nil {
		t.Fatal(err)
	}
	node, _ := blockstore.NewBlock([]byte("a manifest node"))
	if err := sess.Replicate(ctx, node); err != nil {
		t.Fatal(err)
	}
	if err := sess.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// A block only node 2 holds, fetched deep by node 1 through bitswap.
	only, _ := blockstore.NewBlock([]byte("bitswap brings this one"))
	if err := ns[2].store.Put(ctx, only); err != nil {
		t.Fatal(err)
	}
	if _, err := ns[1].net.Fetch(ctx, only.Cid(), 1<<20, nil, true, nil); err != nil {
		t.Fatal(err)
	}
	if held, _ := ns[1].store.Has(ctx, only.Cid()); held {
		t.Fatal("bitswap stored the block it fetched: its write must be counted too")
	}
	for i, n := range ns {
		used, err := n.store.Used(ctx)
		if err != nil {
			t.Fatal(err)
		}
		st, _ := n.store.Stats(ctx)
		if used != st.Charged() || st.Blocks == 0 {
			t.Fatalf("node %d counts %d, holds %d (%d blocks)", i, used, st.Charged(), st.Blocks)
		}
	}
}

// testStripe makes n small shard blocks, distinct for each seed.
func testStripe(n int, seed byte) []blocks.Block {
	var stripe []blocks.Block
	for i := range n {
		b, _ := blockstore.NewBlock([]byte{byte(i), seed, seed, seed})
		stripe = append(stripe, b)
	}
	return stripe
}
