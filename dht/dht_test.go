package dht

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	mh "github.com/multiformats/go-multihash"
)

func blockCID(data string) cid.Cid {
	d := sha256.Sum256([]byte(data))
	h, _ := mh.Encode(d[:], mh.SHA2_256)
	return cid.NewCidV1(cid.Raw, h)
}

// TestRankKnownAnswer pins the placement order: SHA-256(peer ID) XOR
// SHA-256(multihash), smallest first (recomputed in Python with hashlib).
func TestRankKnownAnswer(t *testing.T) {
	peers := []peer.ID{"peer-a", "peer-b", "peer-c", "peer-d", "peer-e", "peer-f"}
	for data, want := range map[string][]peer.ID{
		"umbra":         {"peer-f", "peer-a", "peer-c", "peer-e", "peer-d", "peer-b"},
		"another block": {"peer-b", "peer-d", "peer-e", "peer-c", "peer-a", "peer-f"},
	} {
		in := slices.Clone(peers)
		if got := Rank(in, blockCID(data)); !slices.Equal(got, want) {
			t.Errorf("%q: %v, want %v", data, got, want)
		}
		if !slices.Equal(in, peers) {
			t.Fatal("Rank modified its input")
		}
	}
	// The order does not depend on the order peers are given in.
	rev := slices.Clone(peers)
	slices.Reverse(rev)
	if !slices.Equal(Rank(rev, blockCID("umbra")), Rank(peers, blockCID("umbra"))) {
		t.Fatal("order depends on input order")
	}
}

// testDHTs starts n hosts on 127.0.0.1 with a DHT each, every one connected
// to the first.
func testDHTs(t *testing.T, n int, opts ...Option) ([]host.Host, []*DHT) {
	t.Helper()
	return testDHTsOn(t, make([]ds.Batching, n), opts...)
}

// testDHTsOn is testDHTs with the given datastores (nil: a fresh one).
func testDHTsOn(t *testing.T, stores []ds.Batching, opts ...Option) ([]host.Host, []*DHT) {
	t.Helper()
	n := len(stores)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	var hs []host.Host
	var ds_ []*DHT
	for i := 0; i < n; i++ {
		_, k, _ := ed25519.GenerateKey(rand.Reader)
		priv, _ := crypto.UnmarshalEd25519PrivateKey(k)
		h, err := libp2p.New(libp2p.Identity(priv), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay())
		if err != nil {
			t.Fatal(err)
		}
		store := stores[i]
		if store == nil {
			store = dssync.MutexWrap(ds.NewMapDatastore())
		}
		d, err := New(ctx, h, store, opts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close(); h.Close() })
		if i > 0 {
			if err := h.Connect(ctx, peer.AddrInfo{ID: hs[0].ID(), Addrs: hs[0].Addrs()}); err != nil {
				t.Fatal(err)
			}
		}
		hs, ds_ = append(hs, h), append(ds_, d)
	}
	return hs, ds_
}

// findWithin looks for c's provider p from d until found or the deadline.
func findWithin(t *testing.T, d *DHT, c cid.Cid, p peer.ID, within time.Duration) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	for ctx.Err() == nil {
		fctx, fcancel := context.WithTimeout(ctx, time.Second)
		found := false
		for ai := range d.FindProvidersAsync(fctx, c, 1) {
			found = found || ai.ID == p
		}
		fcancel()
		if found {
			return true
		}
	}
	return false
}

// TestProvideAndFind: a block announced by one node is found as provided by
// it from another, over real hosts on 127.0.0.1.
func TestProvideAndFind(t *testing.T) {
	hs, ds := testDHTs(t, 3, WithAnnounceTiming(10*time.Millisecond, 100*time.Millisecond, time.Millisecond))
	c := blockCID("provided by node 1")
	ds[1].Announce(c)
	if !findWithin(t, ds[2], c, hs[1].ID(), 20*time.Second) {
		t.Fatal("node 2 does not find node 1 as provider")
	}
	if findWithin(t, ds[2], blockCID("provided by nobody"), hs[1].ID(), 500*time.Millisecond) {
		t.Fatal("a block nobody announced has a provider")
	}
}

// TestAnnouncingCounts: a block queued, then being provided, counts in
// Announcing until its provide is done.
func TestAnnouncingCounts(t *testing.T) {
	hs, ds := testDHTs(t, 2, WithAnnounceTiming(300*time.Millisecond, time.Second, time.Millisecond))
	c := blockCID("count me")
	ds[0].Announce(c)
	if n := ds[0].Announcing(); n != 1 {
		t.Fatalf("announcing %d blocks right after one was queued", n)
	}
	if !findWithin(t, ds[1], c, hs[0].ID(), 20*time.Second) {
		t.Fatal("not announced")
	}
	deadline := time.Now().Add(20 * time.Second)
	for ds[0].Announcing() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("still announcing %d blocks after the provide was found", ds[0].Announcing())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestAnnouncementsNotStarved is finding 7 of the hardening review:
// announcers waited for a quiet moment after the last store, so a peer
// storing a tiny block more often than that stopped every announcement. Now
// one waits at most maxWait.
func TestAnnouncementsNotStarved(t *testing.T) {
	hs, ds := testDHTs(t, 2, WithAnnounceTiming(300*time.Millisecond, time.Second, time.Millisecond))
	c := blockCID("announce me")
	ds[0].Announce(c)
	// Keep the node busy: a store every 100 ms, never 300 ms of quiet.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				ds[0].lastStore.store(time.Now())
			}
		}
	}()
	if !findWithin(t, ds[1], c, hs[0].ID(), 20*time.Second) {
		t.Fatal("no announcement while the node kept storing")
	}
}

// TestReannounce queues everything the listing gives, and survives a
// listing that fails.
func TestReannounce(t *testing.T) {
	hs, ds := testDHTs(t, 2, WithAnnounceTiming(time.Millisecond, time.Millisecond, time.Millisecond))
	c := blockCID("held, never announced")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	calls := 0
	go ds[0].Reannounce(ctx, 0, 50*time.Millisecond, func(context.Context) (<-chan cid.Cid, error) {
		calls++
		if calls == 1 {
			return nil, context.DeadlineExceeded // a failed listing
		}
		ch := make(chan cid.Cid, 1)
		ch <- c
		close(ch)
		return ch, nil
	})
	if !findWithin(t, ds[1], c, hs[0].ID(), 20*time.Second) {
		t.Fatal("re-announce did not provide the listed block")
	}
}

// TestQueueFairness: one origin's flood fills only its share; another
// origin's CID is accepted and served next.
func TestQueueFairness(t *testing.T) {
	q := newFairQueue()
	accepted := 0
	for i := range originLen + 100 {
		if q.push("rogue", blockCID(fmt.Sprint("flood ", i))) {
			accepted++
		}
	}
	if accepted != originLen {
		t.Fatalf("one origin queued %d, its share is %d", accepted, originLen)
	}
	honest := blockCID("honest")
	if !q.push("honest", honest) {
		t.Fatal("another origin's CID was dropped")
	}
	ctx := context.Background()
	for i := range 2 {
		if c, _ := q.pop(ctx); c.Equals(honest) {
			return
		} else if i == 1 {
			t.Fatal("the honest origin was not served in turn")
		}
	}
}

// TestAnnounceFloodDoesNotSilence is the review's finding on the announce
// queue: one FIFO of 2^17 CIDs, served at ≤ 50/s, let a peer that stored a
// flood of tiny blocks push every other peer's blocks out for the better
// part of an hour. Now the flood waits in its own share and an honest
// peer's block is announced at once.
func TestAnnounceFloodDoesNotSilence(t *testing.T) {
	hs, ds := testDHTs(t, 2, WithAnnounceTiming(time.Millisecond, 10*time.Millisecond, time.Millisecond))
	rogue := peer.ID("rogue")
	for i := range 20000 {
		ds[0].AnnounceFrom(rogue, blockCID(fmt.Sprint("flood ", i)))
	}
	c := blockCID("an honest peer's shard")
	ds[0].AnnounceFrom(peer.ID("honest"), c)
	if !findWithin(t, ds[1], c, hs[0].ID(), 20*time.Second) {
		t.Fatalf("an honest peer's block was not announced behind a flood (%d queued)", ds[0].queue.len())
	}
}

// TestProvidesReuseWholeNetLookup: on a network smaller than the bucket
// size, one lookup serves the provides that follow (each block still
// reaches every peer), and a new connection ends the reuse.
func TestProvidesReuseWholeNetLookup(t *testing.T) {
	hs, ds := testDHTs(t, 3, WithAnnounceTiming(time.Millisecond, 10*time.Millisecond, time.Millisecond))
	var cs []cid.Cid
	for i := range 20 {
		c := blockCID(fmt.Sprint("batch ", i))
		cs = append(cs, c)
		ds[0].Announce(c)
	}
	for _, c := range cs {
		for _, other := range ds[1:] {
			if !findWithin(t, other, c, hs[0].ID(), 20*time.Second) {
				t.Fatalf("block %v not found as provided by node 0", c)
			}
		}
	}
	if n := ds[0].prov.lookups.Load(); n > 4 {
		t.Fatalf("%d lookups for 20 provides on a 3-node network", n)
	}
	if _, ok := ds[0].prov.whole.get(time.Now(), nil); !ok {
		t.Fatal("the whole-network answer is not kept")
	}
	// A new peer connects: it may be among the closest, so the next
	// provide looks again.
	hs2, _ := testDHTs(t, 1, WithAnnounceTiming(time.Millisecond, 10*time.Millisecond, time.Millisecond))
	if err := hs[0].Connect(context.Background(), peer.AddrInfo{ID: hs2[0].ID(), Addrs: hs2[0].Addrs()}); err != nil {
		t.Fatal(err)
	}
	if _, ok := ds[0].prov.whole.get(time.Now(), nil); ok {
		t.Fatal("a new connection did not end the reuse")
	}
}
