package shard

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	mh "github.com/multiformats/go-multihash"

	"github.com/umbra-store/umbra/blockstore"
	"github.com/umbra-store/umbra/internal/p2phost"
)

// testHost starts a host on 127.0.0.1 with a fresh identity.
func testHost(t *testing.T) host.Host {
	t.Helper()
	_, k, _ := ed25519.GenerateKey(rand.Reader)
	h, err := p2phost.New(p2phost.Options{Key: k, Listen: []string{"/ip4/127.0.0.1/tcp/0"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// serverOpts configure pairServer: the server's options and its store's
// quota.
type serverOpts struct {
	ServerOptions
	quota int64
}

func pair(t *testing.T, o serverOpts) (*Client, peer.ID, *blockstore.Store) {
	t.Helper()
	c, p, st, _ := pairServer(t, o)
	return c, p, st
}

// pairServer starts a server over a fresh store and a client connected to
// it.
func pairServer(t *testing.T, o serverOpts) (*Client, peer.ID, *blockstore.Store, *Server) {
	t.Helper()
	h2 := testHost(t)
	st, err := blockstore.Open(t.TempDir(), blockstore.WithQuota(o.quota))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv := NewServer(h2, st, o.ServerOptions)
	c, _ := pairWith(t, h2.ID(), h2.Addrs())
	return c, h2.ID(), st, srv
}

// pairWith starts a host connected to p at addrs, and a client on it.
func pairWith(t *testing.T, p peer.ID, addrs []ma.Multiaddr) (*Client, host.Host) {
	t.Helper()
	h := testHost(t)
	if err := h.Connect(context.Background(), peer.AddrInfo{ID: p, Addrs: addrs}); err != nil {
		t.Fatal(err)
	}
	return NewClient(h), h
}

// TestShardProtocol stores, syncs, checks and fetches over real hosts on
// 127.0.0.1 a block of each name umbra writes (sha2-256 nodes, blake3
// shards), and sees the receiver refuse a block that fails its CID, a
// store over its quota and a fetch of a missing block.
func TestShardProtocol(t *testing.T) {
	for _, h := range []blockstore.Hash{blockstore.SHA256, blockstore.BLAKE3} {
		t.Run(h.String(), func(t *testing.T) {
			ctx := context.Background()
			c, p, st := pair(t, serverOpts{quota: 1 << 20})
			b, _ := blockstore.NewBlockHash(h, make([]byte, 300000))
			if err := c.Store(ctx, p, b, Lease{}); err != nil {
				t.Fatal(err)
			}
			if err := c.Sync(ctx, p); err != nil {
				t.Fatal(err)
			}
			if has, _ := st.Has(ctx, b.Cid()); !has {
				t.Fatal("stored block missing on the receiver")
			}
			if ok, err := c.Has(ctx, p, b.Cid()); !ok || err != nil {
				t.Fatalf("has: %v %v", ok, err)
			}
			got, err := c.Fetch(ctx, p, b.Cid(), 4<<20)
			if err != nil || len(got) != 300000 {
				t.Fatalf("fetch: %d %v", len(got), err)
			}
			var re *RemoteError
			other, _ := blockstore.NewBlockHash(h, []byte("other"))
			bad, _ := blocks.NewBlockWithCid([]byte("not it"), other.Cid())
			if err := c.Store(ctx, p, bad, Lease{}); !errors.As(err, &re) || re.Code != CodeHash {
				t.Fatalf("bad block: %v", err)
			}
			if ok, _ := st.Has(ctx, other.Cid()); ok {
				t.Fatal("the forged block was stored")
			}
			big, _ := blockstore.NewBlockHash(h, make([]byte, 900000))
			if err := c.Store(ctx, p, big, Lease{}); !errors.As(err, &re) || re.Code != CodeFull {
				t.Fatalf("over quota: %v", err)
			}
			if _, err := c.Fetch(ctx, p, big.Cid(), 4<<20); !errors.As(err, &re) || re.Code != CodeNotFound {
				t.Fatalf("missing block: %v", err)
			}
		})
	}
}

// TestQuotaConcurrentStores sends many stores at once to a peer with room
// for ten of them: exactly ten are taken, the rest answered "full", and
// the store never holds more than its quota.
func TestQuotaConcurrentStores(t *testing.T) {
	ctx := context.Background()
	const quota, size, n = 1 << 20, 100000, 64
	c, p, st, _ := pairServer(t, serverOpts{quota: quota})
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		data := make([]byte, size)
		data[0], data[1] = byte(i), 0xa5
		b, _ := blockstore.NewBlock(data)
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.Store(ctx, p, b, Lease{})
		}()
	}
	wg.Wait()
	stored := 0
	for _, err := range errs {
		var re *RemoteError
		switch {
		case err == nil:
			stored++
		case !errors.As(err, &re) || re.Code != CodeFull:
			t.Fatalf("store: %v, want ok or full", err)
		}
	}
	if stored != quota/size {
		t.Fatalf("%d stores taken, want %d", stored, quota/size)
	}
	stats, err := st.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	used, _ := st.Used(ctx)
	if stats.Charged() > quota || stats.Charged() != used {
		t.Fatalf("store holds %d bytes (%d charged), counts %d, quota %d", stats.Bytes, stats.Charged(), used, quota)
	}
}

// TestMalformedFrameEndsStream sends garbage: the receiver answers ERROR
// malformed and ends the stream, and keeps serving new streams.
func TestMalformedFrameEndsStream(t *testing.T) {
	ctx := context.Background()
	c, p, _ := pair(t, serverOpts{})
	s, err := c.h.NewStream(ctx, p, Protocol)
	if err != nil {
		t.Fatal(err)
	}
	s.Write([]byte{9, 9, 9, 9, 9, 9})
	f, _, err := ReadFrame(bufio.NewReader(s), nil)
	if err != nil || f.Type != TypeError {
		t.Fatalf("answer to garbage: %v %v", f.Type, err)
	}
	e, _ := ParseError(f.Payload)
	if e.Code != CodeMalformed {
		t.Fatalf("code %v", e.Code)
	}
	s.Close()
	// An unknown request type on a fresh stream is answered too.
	s, _ = c.h.NewStream(ctx, p, Protocol)
	WriteFrame(s, 0x7f)
	f, _, err = ReadFrame(bufio.NewReader(s), nil)
	if err != nil || f.Type != TypeError {
		t.Fatalf("answer to unknown type: %v %v", f.Type, err)
	}
	s.Close()
	b, _ := blockstore.NewBlock([]byte("still serving"))
	if err := c.Store(ctx, p, b, Lease{}); err != nil {
		t.Fatalf("service died: %v", err)
	}
}

// TestPooledStreamSurvivesReconnect drops the connection after a request
// and reconnects: the next request must not fail on the dead pooled stream.
func TestPooledStreamSurvivesReconnect(t *testing.T) {
	ctx := context.Background()
	c, p, _ := pair(t, serverOpts{})
	b, _ := blockstore.NewBlock([]byte("first"))
	if err := c.Store(ctx, p, b, Lease{}); err != nil {
		t.Fatal(err)
	}
	addrs := c.h.Peerstore().Addrs(p)
	if err := c.h.Network().ClosePeer(p); err != nil {
		t.Fatal(err)
	}
	if err := c.h.Connect(ctx, peer.AddrInfo{ID: p, Addrs: addrs}); err != nil {
		t.Fatal(err)
	}
	b2, _ := blockstore.NewBlock([]byte("second"))
	if err := c.Store(ctx, p, b2, Lease{}); err != nil {
		t.Fatalf("store after reconnect: %v", err)
	}
	if err := c.Sync(ctx, p); err != nil {
		t.Fatalf("sync after reconnect: %v", err)
	}
}

// TestInflightBudget: a peer that sends the header of a large STORE and then
// stalls holds its payload's share of the service's memory budget; a second
// STORE that does not fit waits for it, and every byte is given back.
func TestInflightBudget(t *testing.T) {
	ctx := context.Background()
	c, p, _, srv := pairServer(t, serverOpts{})
	const budget = 1 << 20
	srv.mem = newBudget(budget, budget)
	big, _ := blockstore.NewBlock(make([]byte, 700<<10))
	parts := StoreParts(Lease{}, big.Cid().Bytes(), big.RawData())
	var frame bytes.Buffer
	if err := WriteFrame(&frame, TypeStore, parts...); err != nil {
		t.Fatal(err)
	}
	s, err := c.h.NewStream(ctx, p, Protocol)
	if err != nil {
		t.Fatal(err)
	}
	raw := frame.Bytes()
	if _, err := s.Write(raw[:1000]); err != nil { // header and a little payload
		t.Fatal(err)
	}
	// The stalled frame holds its payload: what is left cannot take the
	// second store, which waits. (Sent only now: sent earlier, it could be
	// served before the stalled header is read, and wait for nothing.)
	for srv.mem.all.TryAcquire(budget - int64(len(raw)) + 100) {
		srv.mem.all.Release(budget - int64(len(raw)) + 100)
		runtime.Gosched() // until the service has read the stalled header
	}
	second, _ := blockstore.NewBlock(bytes.Repeat([]byte{1}, 600<<10))
	done := make(chan error, 1)
	go func() { done <- c.Store(ctx, p, second, Lease{}) }()
	// The second STORE reaches the budget (its peer's second user) and
	// waits there: it is not answered while the stalled one holds its bytes.
	users := func() int {
		srv.mem.mu.Lock()
		defer srv.mem.mu.Unlock()
		if pb := srv.mem.peers[c.h.ID()]; pb != nil {
			return pb.users
		}
		return 0
	}
	for deadline := time.Now().Add(10 * time.Second); users() < 2; runtime.Gosched() {
		if time.Now().After(deadline) {
			t.Fatal("the second STORE never asked the budget for room")
		}
	}
	select {
	case err := <-done:
		t.Fatalf("the second STORE did not wait for the stalled one's bytes: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	if _, err := s.Write(raw[1000:]); err != nil {
		t.Fatal(err)
	}
	f, _, err := ReadFrame(bufio.NewReader(s), nil)
	if err != nil || f.Type != TypeOK {
		t.Fatalf("stalled store: %v %v", f.Type, err)
	}
	if err := <-done; err != nil {
		t.Fatalf("waiting store: %v", err)
	}
	s.Close()
	if err := c.Sync(ctx, p); err != nil {
		t.Fatal(err)
	}
	if !srv.mem.all.TryAcquire(budget) {
		t.Fatal("payload bytes not given back to the budget")
	}
	if n := srv.mem.peersHeld(); n != 0 {
		t.Fatalf("%d peers still listed in the budget", n)
	}
}

// TestRepliesUnderPeerBudget is finding 2 of the hardening review at the
// protocol level: FETCH replies were filled and held outside the budget
// while a peer never read them. Replies now count against the reading
// peer's share: a peer that opens many FETCH streams and reads nothing
// holds at most its share, and another peer is still served at once.
func TestRepliesUnderPeerBudget(t *testing.T) {
	ctx := context.Background()
	c, p, st, srv := pairServer(t, serverOpts{})
	const share = 4 << 20
	srv.mem = newBudget(3*share, share)
	b, _ := blockstore.NewBlock(make([]byte, 2<<20))
	if err := st.Put(ctx, b); err != nil {
		t.Fatal(err)
	}
	var req bytes.Buffer
	WriteFrame(&req, TypeFetch, CIDParts(b.Cid().Bytes())...)
	for range 20 { // 40 MiB of replies asked for, none read
		s, err := c.h.NewStream(ctx, p, Protocol)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Reset()
		if _, err := s.Write(req.Bytes()); err != nil {
			t.Fatal(err)
		}
	}
	// Wait until the greedy peer holds its whole share.
	for srv.mem.all.TryAcquire(2*share + 1) {
		srv.mem.all.Release(2*share + 1)
		runtime.Gosched()
	}
	if srv.mem.all.TryAcquire(2*share + 1) {
		t.Fatal("unreachable")
	}
	// It never holds more than its share.
	if !srv.mem.all.TryAcquire(2 * share) {
		t.Fatal("one peer holds more than its share of the budget")
	}
	srv.mem.all.Release(2 * share)
	// A second peer is served.
	c2, _ := pairWith(t, p, c.h.Peerstore().Addrs(p))
	got, err := c2.Fetch(ctx, p, b.Cid(), 4<<20)
	if err != nil || len(got) != 2<<20 {
		t.Fatalf("second peer's fetch: %v", err)
	}
}

// TestQuotaBypassRefused is finding 4 of the hardening review: a node with a
// 200,000-byte quota acknowledged 257 blocks of 16.8 MB under truncated
// digests and other hash functions, then refused an honest 200 kB STORE as
// full. STORE, FETCH and HAS now take only umbra's CID form, and each block
// is charged its index overhead.
func TestQuotaBypassRefused(t *testing.T) {
	ctx := context.Background()
	const quota = 200_000
	c, p, st, _ := pairServer(t, serverOpts{quota: quota})
	data := []byte("x")
	sum := sha256.Sum256(data)
	for _, n := range []int{0, 1, 2, 20} {
		h, _ := mh.Encode(sum[:n], mh.SHA2_256)
		forged, _ := blocks.NewBlockWithCid(make([]byte, 65536), cid.NewCidV1(cid.Raw, h))
		var re *RemoteError
		if err := c.Store(ctx, p, forged, Lease{}); !errors.As(err, &re) || re.Code != CodeMalformed {
			t.Fatalf("digest of %d bytes: %v", n, err)
		}
		if _, err := c.Fetch(ctx, p, forged.Cid(), 4<<20); !errors.As(err, &re) || re.Code != CodeMalformed {
			t.Fatalf("fetch, digest of %d bytes: %v", n, err)
		}
		if _, err := c.Has(ctx, p, forged.Cid()); !errors.As(err, &re) || re.Code != CodeMalformed {
			t.Fatalf("has, digest of %d bytes: %v", n, err)
		}
	}
	m5 := md5.Sum(data)
	h, _ := mh.Encode(m5[:], mh.MD5)
	md5Block, _ := blocks.NewBlockWithCid(data, cid.NewCidV1(cid.Raw, h))
	if err := c.Store(ctx, p, md5Block, Lease{}); err == nil {
		t.Fatal("an MD5 block was stored")
	}
	// Tiny blocks are charged their overhead: the quota holds far fewer
	// of them than its bytes alone would suggest.
	taken := 0
	for i := 0; ; i++ {
		b, _ := blockstore.NewBlock([]byte{byte(i), byte(i >> 8)})
		err := c.Store(ctx, p, b, Lease{})
		if err != nil {
			var re *RemoteError
			if !errors.As(err, &re) || re.Code != CodeFull {
				t.Fatal(err)
			}
			break
		}
		taken++
		if taken > quota {
			t.Fatal("quota never reached")
		}
	}
	if want := quota / int(blockstore.Charge(2)); taken != want {
		t.Fatalf("%d two-byte blocks taken, want %d", taken, want)
	}
	stats, _ := st.Stats(ctx)
	if used, _ := st.Used(ctx); stats.Charged() != used || used > quota {
		t.Fatalf("charged %d, counted %d, quota %d", stats.Charged(), used, quota)
	}
	// A block above the largest shard is refused whatever the quota.
	huge, _ := blockstore.NewBlock(make([]byte, maxStoreBlock+1))
	c2, p2, _, _ := pairServer(t, serverOpts{})
	var re *RemoteError
	if err := c2.Store(ctx, p2, huge, Lease{}); !errors.As(err, &re) || re.Code != CodeMalformed {
		t.Fatalf("block of %d bytes: %v", maxStoreBlock+1, err)
	}
}

// peersHeld returns how many peers hold or wait for bytes of b.
func (b *budget) peersHeld() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.peers)
}

// TestIdleStreamsOfGonePeersDropped is the review's finding on the client:
// idle streams (and their buffers) to peers that disconnected stayed for the
// life of the node. They are closed when the peer goes, and all peers'
// idle streams together are bounded.
func TestIdleStreamsOfGonePeersDropped(t *testing.T) {
	ctx := context.Background()
	c := NewClient(testHost(t))
	b, _ := blockstore.NewBlock([]byte("asked of everyone"))
	for range 20 {
		srv := testHost(t)
		st, err := blockstore.Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		NewServer(srv, st, ServerOptions{})
		if err := c.h.Connect(ctx, peer.AddrInfo{ID: srv.ID(), Addrs: srv.Addrs()}); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for range maxIdle {
			wg.Add(1)
			go func() { defer wg.Done(); c.Has(ctx, srv.ID(), b.Cid()) }()
		}
		wg.Wait()
		c.mu.Lock()
		pooled := len(c.idle[srv.ID()])
		c.mu.Unlock()
		if pooled == 0 { // the HAS errors are not checked: none may fail
			t.Fatal("no idle stream kept for a connected peer: nothing to drop")
		}
		srv.Close() // the peer goes away
		st.Close()
	}
	deadline := time.Now().Add(10 * time.Second) // disconnect notices are asynchronous
	for {
		c.mu.Lock()
		n, peers := c.total, len(c.idle)
		c.mu.Unlock()
		if n == 0 && peers == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d idle streams kept for %d peers that are gone", n, peers)
		}
		runtime.Gosched()
	}
}

// TestPooledStreamsEndedByServer: the server ends streams idle for its
// idle time; the client's pool still holds them. The next requests must go
// on streams that are open: before, a STORE took a pooled stream the
// server had ended (EOF), retried on another (EOF again) and failed, and
// the put placed its shards elsewhere; a STORE larger than the muxer's
// window waited out its deadline in a stream nobody read.
func TestPooledStreamsEndedByServer(t *testing.T) {
	ctx := context.Background()
	h2 := testHost(t)
	st, err := blockstore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv := NewServer(h2, st, ServerOptions{})
	srv.idle = 100 * time.Millisecond
	c, _ := pairWith(t, h2.ID(), h2.Addrs())
	p := h2.ID()
	// Four STOREs at once leave four streams in the pool.
	errs := make(chan error, 4)
	for i := range 4 {
		go func() {
			b, _ := blockstore.NewBlock([]byte(fmt.Sprintf("block %d", i)))
			errs <- c.Store(ctx, p, b, Lease{})
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	c.mu.Lock()
	n := len(c.idle[p])
	c.mu.Unlock()
	if n < 2 {
		t.Fatalf("%d pooled streams, want at least 2", n)
	}
	shardStreams := func() int {
		n := 0
		for _, conn := range h2.Network().ConnsToPeer(c.h.ID()) {
			for _, s := range conn.GetStreams() {
				if s.Protocol() == Protocol {
					n++
				}
			}
		}
		return n
	}
	// Ended when the server dropped them and their close reached this
	// side (as it has, long since, when a put comes ten minutes later).
	closed := func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, cs := range c.idle[p] {
			if !ended(cs) {
				return false
			}
		}
		return shardStreams() == 0
	}
	if !eventually(closed) {
		t.Fatalf("the server kept %d idle streams, or their close never arrived", shardStreams())
	}
	small, _ := blockstore.NewBlock([]byte("after the idle time"))
	if err := c.Store(ctx, p, small, Lease{}); err != nil {
		t.Fatalf("a STORE after the server ended the pooled streams: %v", err)
	}
	// The pool again, ended again; now a block larger than the window.
	if !eventually(closed) {
		t.Fatalf("the server kept %d idle streams, or their close never arrived", shardStreams())
	}
	big, _ := blockstore.NewBlock(bytes.Repeat([]byte("x"), 1<<20))
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := c.Store(sctx, p, big, Lease{}); err != nil {
		t.Fatalf("a 1 MiB STORE after the server ended the pooled stream: %v", err)
	}
}

// eventually polls f until it holds, for at most 10 s.
func eventually(f func() bool) bool {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); runtime.Gosched() {
		if f() {
			return true
		}
	}
	return f()
}

// pooledTwo asks p two HAS, each on a new stream, so that two streams to p
// are pooled, and returns them. (Two STOREs at once did not always pool
// two: under load the first was back in the pool before the second took
// one.)
func pooledTwo(t *testing.T, c *Client, p peer.ID) []*clientStream {
	t.Helper()
	for i := range 2 {
		b, _ := blockstore.NewBlock([]byte(fmt.Sprintf("pooled %d", i)))
		f, _, err := c.roundTripOnce(context.Background(), p, 0, nil, true, TypeHas, CIDParts(b.Cid().Bytes())...)
		if err != nil || f.Type != TypeHave {
			t.Fatalf("HAS on a new stream: 0x%02x %v", byte(f.Type), err)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.idle[p]) != 2 {
		t.Fatalf("%d pooled streams, want 2", len(c.idle[p]))
	}
	return append([]*clientStream(nil), c.idle[p]...)
}

// TestFailedReusedStreamRetriedOnNew: a request that fails on a pooled
// stream the check let through (here: closed for writing on this side) is
// tried again on a new stream, not on the next pooled one, which may be
// as dead.
func TestFailedReusedStreamRetriedOnNew(t *testing.T) {
	c, p, _ := pair(t, serverOpts{})
	for _, cs := range pooledTwo(t, c, p) {
		_ = cs.s.CloseWrite()
	}
	b, _ := blockstore.NewBlock([]byte("after two broken pooled streams"))
	if err := c.Store(context.Background(), p, b, Lease{}); err != nil {
		t.Fatalf("a STORE with two broken streams pooled: %v", err)
	}
}

// TestOldPooledStreamNotReused: a stream idle in the pool for maxIdleAge
// is reset, not reused: the server may end it as the request is written.
func TestOldPooledStreamNotReused(t *testing.T) {
	c, p, _ := pair(t, serverOpts{})
	old := pooledTwo(t, c, p)
	c.mu.Lock()
	for _, cs := range old {
		cs.idle = time.Now().Add(-maxIdleAge)
	}
	c.mu.Unlock()
	cs, reused, err := c.take(context.Background(), p, false)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.s.Reset()
	if reused || slices.Contains(old, cs) {
		t.Fatal("a stream idle for maxIdleAge was reused")
	}
}
