package dht

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p"
	pb "github.com/libp2p/go-libp2p-kad-dht/pb"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-msgio/pbio"
)

func bareHost(t *testing.T) host.Host {
	t.Helper()
	_, k, _ := ed25519.GenerateKey(rand.Reader)
	priv, _ := crypto.UnmarshalEd25519PrivateKey(k)
	h, err := libp2p.New(libp2p.Identity(priv), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// tarpitHost is a DHT server that answers the routing table's liveness
// check (FIND_NODE for its own ID) and never answers any other request: a
// malicious peer, or one whose connection died silently.
func tarpitHost(t *testing.T) host.Host {
	h := bareHost(t)
	h.SetStreamHandler(protocol.ID(ProtocolPrefix+"/kad/1.0.0"), func(s network.Stream) {
		r, w := pbio.NewDelimitedReader(s, 1<<20), pbio.NewDelimitedWriter(s)
		for {
			var m pb.Message
			if err := r.ReadMsg(&m); err != nil {
				s.Reset()
				return
			}
			if m.GetType() == pb.Message_FIND_NODE && peer.ID(m.GetKey()) == h.ID() {
				_ = w.WriteMsg(&pb.Message{Type: pb.Message_FIND_NODE, Key: m.GetKey()})
				continue
			}
			io.Copy(io.Discard, s) // stall until the asker gives up
			s.Reset()
			return
		}
	})
	return h
}

func waitInRT(t *testing.T, d *DHT, ps ...peer.ID) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, p := range ps {
		for d.kad.RoutingTable().Find(p) == "" {
			if time.Now().After(deadline) {
				t.Fatalf("%s never entered the routing table", p)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// eventually reports whether f holds within 5 s (an ADD_PROVIDER has no
// reply: the record lands when the peer has handled it).
func eventually(f func() bool) bool {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if f() {
			return true
		}
	}
	return f()
}

func holdsProvider(t *testing.T, d *DHT, c cid.Cid, p peer.ID) bool {
	t.Helper()
	ais, err := d.kad.ProviderStore().GetProviders(context.Background(), c.Hash())
	if err != nil {
		t.Fatal(err)
	}
	for _, ai := range ais {
		if ai.ID == p {
			return true
		}
	}
	return false
}

// TestProvideStalledLookupStillSends: a lookup that runs into the
// provide's deadline (one peer that never answers FIND_NODE is enough: 10 s
// read timeout, a retry, then the follow-up asks it again) makes provide send
// no ADD_PROVIDER at all. kad's own Provide (classicProvide) keeps part of
// the deadline back (1 s of 30 s; 10 % under 10 s) and sends the record to
// the peers it found. Scaled down here to a 3 s deadline.
func TestProvideStalledLookupStillSends(t *testing.T) {
	hs, ds := testDHTs(t, 3, WithAnnounceTiming(time.Millisecond, 10*time.Millisecond, time.Millisecond))
	tp := tarpitHost(t)
	if err := tp.Connect(context.Background(), peer.AddrInfo{ID: hs[0].ID(), Addrs: hs[0].Addrs()}); err != nil {
		t.Fatal(err)
	}
	waitInRT(t, ds[0], hs[1].ID(), hs[2].ID(), tp.ID())

	honestGot := func(c cid.Cid) bool {
		return holdsProvider(t, ds[1], c, hs[0].ID()) || holdsProvider(t, ds[2], c, hs[0].ID())
	}

	// Control: kad's Provide under the same deadline.
	c1 := blockCID("provide test: kad provide")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	err := ds[0].kad.Provide(ctx, c1, true)
	cancel()
	if !eventually(func() bool { return honestGot(c1) }) {
		t.Fatalf("the control failed: kad.Provide (%v) reached no honest peer either", err)
	}
	t.Logf("kad.Provide: err=%v, the honest peers hold the record", err)

	c2 := blockCID("provide test: umbra provide")
	ctx, cancel = context.WithTimeout(context.Background(), 3*time.Second)
	err = ds[0].provide(ctx, c2)
	cancel()
	if !eventually(func() bool { return honestGot(c2) }) {
		t.Fatalf("provide (err=%v) sent the record to no peer; kad.Provide under the same deadline reached the honest peers", err)
	}
}

// TestProvideReuseCoversRoutingTable: kad adds a peer to the
// routing table after identify and a FIND_NODE liveness check, i.e. after
// Notifiee.Connected fired. A lookup in between names the old set, which is
// then reused for 10 s while the routing table (and any per-key lookup)
// already holds the new peer. Made deterministic here by starting the new
// peer's DHT after its connection.
func TestProvideReuseCoversRoutingTable(t *testing.T) {
	timing := WithAnnounceTiming(time.Millisecond, 10*time.Millisecond, time.Millisecond)
	hs, dd := testDHTs(t, 3, timing)
	waitInRT(t, dd[0], hs[1].ID(), hs[2].ID())

	x := bareHost(t)
	if err := x.Connect(context.Background(), peer.AddrInfo{ID: hs[0].ID(), Addrs: hs[0].Addrs()}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := dd[0].provide(ctx, blockCID("provide test: before")); err != nil {
		t.Fatal(err)
	}
	if _, ok := dd[0].prov.whole.get(time.Now(), nil); !ok {
		t.Fatal("no whole-network answer kept after a lookup on 3 nodes")
	}

	xctx, xcancel := context.WithCancel(ctx)
	t.Cleanup(xcancel)
	dx, err := New(xctx, x, dssync.MutexWrap(ds.NewMapDatastore()), timing)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dx.Close() })
	waitInRT(t, dd[0], x.ID())
	peers, ok := dd[0].prov.whole.get(time.Now(), dd[0].kad.RoutingTable().ListPeers())
	t.Logf("routing table %v; reused set %v (in use: %v)", dd[0].kad.RoutingTable().ListPeers(), peers, ok)

	c := blockCID("provide test: after")
	if err := dd[0].provide(ctx, c); err != nil {
		t.Fatal(err)
	}
	held := eventually(func() bool { return holdsProvider(t, dx, c, hs[0].ID()) })
	if !held {
		t.Fatalf("%s is in node 0's routing table, so a lookup would name it, but the provide skipped it (reused set %v)", x.ID(), peers)
	}
}

// TestProvideStalledPeerKeepsReuse: an ADD_PROVIDER refused because its
// peer is timed out (it stalled an earlier one) says nothing about who is
// in the network: the provide keeps the whole-network set for the next
// ones instead of making each look the peers up again (through the
// stalling peer too).
func TestProvideStalledPeerKeepsReuse(t *testing.T) {
	timing := WithAnnounceTiming(time.Millisecond, 10*time.Millisecond, time.Millisecond)
	hs, dd := testDHTs(t, 3, timing)
	waitInRT(t, dd[0], hs[1].ID(), hs[2].ID())
	ctx := context.Background()
	if err := dd[0].provide(ctx, blockCID("stalled: before")); err != nil {
		t.Fatal(err)
	}
	if _, ok := dd[0].prov.whole.get(time.Now(), nil); !ok {
		t.Fatal("no whole-network answer kept after a lookup on 3 nodes")
	}
	dd[0].prov.sender.stall(hs[1].ID())
	lookups := dd[0].prov.lookups.Load()
	if err := dd[0].provide(ctx, blockCID("stalled: after")); err != nil {
		t.Fatal(err)
	}
	if _, ok := dd[0].prov.whole.get(time.Now(), nil); !ok || dd[0].prov.lookups.Load() != lookups {
		t.Fatalf("after a provide that skipped a timed-out peer: set kept %v, lookups %d → %d", ok, lookups, dd[0].prov.lookups.Load())
	}
}
