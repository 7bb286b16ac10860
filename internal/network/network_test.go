package p2p

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	blocks "github.com/ipfs/go-block-format"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/umbra-store/umbra/blockstore"
	"github.com/umbra-store/umbra/internal/wire"
)

type testNode struct {
	net   *Net
	store *blockstore.Store
	id    peer.ID
}

// newNodes starts n hosts on 127.0.0.1, each with a store, DHT, shard
// service and bitswap, all connected to the first.
func newNodes(t *testing.T, n int, withBitswap bool) []testNode {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	var out []testNode
	for i := 0; i < n; i++ {
		_, k, _ := ed25519.GenerateKey(rand.Reader)
		h, err := NewHost(HostOptions{Key: k, Listen: []string{"/ip4/127.0.0.1/tcp/0"}})
		if err != nil {
			t.Fatal(err)
		}
		st, err := blockstore.Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		d, err := NewDHT(ctx, h, st)
		if err != nil {
			t.Fatal(err)
		}
		svc, err := NewService(ctx, h, st, ServiceOptions{})
		if err != nil {
			t.Fatal(err)
		}
		nt := NewNet(ctx, h, d, st, svc, slog.New(slog.DiscardHandler))
		if withBitswap {
			bs := NewBitswap(ctx, h, d, st)
			nt.SetBitswap(bs)
			t.Cleanup(func() { bs.Close() })
		}
		t.Cleanup(func() { d.Close(); h.Close(); st.Close() })
		if i > 0 {
			if err := h.Connect(ctx, peer.AddrInfo{ID: out[0].id, Addrs: out[0].net.h.Addrs()}); err != nil {
				t.Fatal(err)
			}
		}
		out = append(out, testNode{net: nt, store: st, id: h.ID()})
	}
	return out
}

// warmUp stores a small block from node 0 on every other node: node 0 is
// connected to all, and this waits for each to know the shard protocol
// (identify).
func warmUp(t *testing.T, ns []testNode) {
	t.Helper()
	for _, n := range ns[1:] {
		b, _ := blockstore.NewBlock([]byte("warm " + n.id.String()))
		if err := ns[0].net.client.Store(context.Background(), n.id, b, 0); err != nil {
			t.Fatal(err)
		}
	}
}

// TestFetchOrder: a hinted holder serves a shallow fetch; without a hint a
// shallow fetch gives up; a deep fetch finds the block through bitswap when
// no provider record exists.
func TestFetchOrder(t *testing.T) {
	ctx := context.Background()
	ns := newNodes(t, 2, true)
	b, _ := blockstore.NewBlock([]byte("held by node 1 only, never announced"))
	if err := ns[1].store.Put(ctx, b); err != nil {
		t.Fatal(err)
	}
	got, err := ns[0].net.Fetch(ctx, b.Cid(), []byte(ns[1].id), false)
	if err != nil || string(got) != string(b.RawData()) {
		t.Fatalf("hinted shallow fetch: %v", err)
	}
	other, _ := blockstore.NewBlock([]byte("another block, also only on node 1"))
	ns[1].store.Put(ctx, other)
	if _, err := ns[0].net.Fetch(ctx, other.Cid(), nil, false); err == nil {
		t.Fatal("shallow fetch without a hint searched the network")
	}
	got, err = ns[0].net.Fetch(ctx, other.Cid(), nil, true)
	if err != nil || string(got) != string(other.RawData()) {
		t.Fatalf("deep fetch through bitswap: %v", err)
	}
}

// rogue replaces h's shard-protocol handler with answer, which gets each
// request frame and returns the response frame to send.
func rogue(h host.Host, answer func(f wire.Frame) (wire.Type, []byte)) {
	h.SetStreamHandler(ShardProtocol, func(st network.Stream) {
		defer st.Close()
		r := bufio.NewReader(st)
		for {
			f, _, err := wire.ReadFrame(r, nil)
			if err != nil {
				return
			}
			t, payload := answer(f)
			if err := wire.WriteFrame(st, t, payload); err != nil {
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
			ns := newNodes(t, 2, false)
			b, _ := blockstore.NewBlock([]byte("some shard " + name))
			rogue(ns[1].net.h, func(f wire.Frame) (wire.Type, []byte) {
				return wire.TypeBlock, forge(b.RawData())
			})
			for _, deep := range []bool{false, true} {
				if got, err := ns[0].net.Fetch(ctx, b.Cid(), []byte(ns[1].id), deep); err == nil {
					t.Fatalf("deep=%v: forged bytes returned: %q", deep, got)
				}
			}
			if !ns[0].net.isBad(ns[1].id) {
				t.Fatal("the peer that sent bad bytes is not avoided")
			}
		})
	}
}

// TestPeerNotesBounded is finding 8b: hints naming made-up peers grew the
// down and bad lists without bound.
func TestPeerNotesBounded(t *testing.T) {
	ctx := context.Background()
	ns := newNodes(t, 1, false)
	b, _ := blockstore.NewBlock([]byte("nobody has it"))
	for i := range 3 * maxPeerNotes {
		_, pub, _ := crypto.GenerateEd25519Key(rand.Reader)
		id, _ := peer.IDFromPublicKey(pub)
		ns[0].net.mu.Lock()
		note(ns[0].net.bad, id, badPeerPenalty)
		note(ns[0].net.down, id, downPenalty)
		ns[0].net.mu.Unlock()
		if i%512 == 0 { // and through the real path: a fetch hinting it
			_, _ = ns[0].net.Fetch(ctx, b.Cid(), []byte(id), true)
		}
	}
	ns[0].net.mu.Lock()
	nb, nd := len(ns[0].net.bad), len(ns[0].net.down)
	ns[0].net.mu.Unlock()
	if nb > maxPeerNotes || nd > maxPeerNotes {
		t.Fatalf("peer lists hold %d bad, %d down; bound %d", nb, nd, maxPeerNotes)
	}
}

// TestAnnouncementsNotStarved is finding 7: announcers waited for a quiet
// moment after the last store, so a peer storing a tiny block more often
// than that stopped every announcement. Now one waits at most maxWait.
func TestAnnouncementsNotStarved(t *testing.T) {
	ctx := context.Background()
	ns := newNodes(t, 2, false)
	a := ns[0].net
	a.quiet, a.maxWait = 300*time.Millisecond, time.Second
	b, _ := blockstore.NewBlock([]byte("announce me"))
	if err := a.store.Put(ctx, b); err != nil {
		t.Fatal(err)
	}
	a.Announce(b.Cid())
	// Keep the node busy: a store every 100 ms, never 300 ms of quiet.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
				a.lastStore.Store(time.Now().UnixNano())
			}
		}
	}()
	// The announcement reaches node 1's DHT well before the stores stop.
	fctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for fctx.Err() == nil {
		pctx, pcancel := context.WithTimeout(fctx, time.Second)
		found := false
		for ai := range ns[1].net.dht.FindProvidersAsync(pctx, b.Cid(), 1) {
			found = found || ai.ID == ns[0].id
		}
		pcancel()
		if found {
			return
		}
	}
	t.Fatal("no announcement while the node kept storing")
}

// TestPlacementSpreadsAndRefuses: with 5 nodes a stripe lands on 5 distinct
// peers; with 2 a 3+2 put is refused unless allowed.
func TestPlacementSpreadsAndRefuses(t *testing.T) {
	ctx := context.Background()
	ns := newNodes(t, 5, false)
	warmUp(t, ns)
	sess, err := ns[0].net.NewPutSession(3, 2, false)
	if err != nil {
		t.Fatal(err)
	}
	var stripe []blocks.Block
	for i := 0; i < 5; i++ {
		b, _ := blockstore.NewBlock([]byte{byte(i), 1, 2, 3})
		stripe = append(stripe, b)
	}
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
	two := newNodes(t, 2, false)
	if _, err := two[0].net.NewPutSession(3, 2, false); !errors.Is(err, ErrFewPeers) {
		t.Fatalf("2 peers for 3+2: %v", err)
	}
}

// TestPlacementNamesTheShortage: when every peer (this node included) is at
// its quota, placing a stripe fails with an error that says so.
func TestPlacementNamesTheShortage(t *testing.T) {
	ctx := context.Background()
	ns := newNodes(t, 3, false)
	warmUp(t, ns)
	for _, n := range ns {
		n.net.svc.max = n.net.svc.Used() + 1 // room for no shard
	}
	sess, err := ns[0].net.NewPutSession(2, 1, false)
	if err != nil {
		t.Fatal(err)
	}
	var stripe []blocks.Block
	for i := 0; i < 3; i++ {
		b, _ := blockstore.NewBlock([]byte{byte(i), 9, 9, 9})
		stripe = append(stripe, b)
	}
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
