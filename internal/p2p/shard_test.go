package p2p

import (
	"bufio"
	"bytes"
	"runtime"

	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"golang.org/x/sync/semaphore"
	"sync"
	"testing"

	blocks "github.com/ipfs/go-block-format"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/umbra-store/umbra/blockstore"
	"github.com/umbra-store/umbra/internal/wire"
)

func pair(t *testing.T, o ServiceOptions) (*Client, peer.ID, *blockstore.Store) {
	t.Helper()
	c, p, st, _ := pairService(t, o)
	return c, p, st
}

func pairService(t *testing.T, o ServiceOptions) (*Client, peer.ID, *blockstore.Store, *Service) {
	t.Helper()
	_, k1, _ := ed25519.GenerateKey(rand.Reader)
	_, k2, _ := ed25519.GenerateKey(rand.Reader)
	h1, err := NewHost(HostOptions{Key: k1, Listen: []string{"/ip4/127.0.0.1/tcp/0"}})
	if err != nil {
		t.Fatal(err)
	}
	h2, err := NewHost(HostOptions{Key: k2, Listen: []string{"/ip4/127.0.0.1/tcp/0"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h1.Close(); h2.Close() })
	st, err := blockstore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	svc, err := NewService(context.Background(), h2, st, o)
	if err != nil {
		t.Fatal(err)
	}
	if err := h1.Connect(context.Background(), peer.AddrInfo{ID: h2.ID(), Addrs: h2.Addrs()}); err != nil {
		t.Fatal(err)
	}
	return NewClient(h1), h2.ID(), st, svc
}

// TestShardProtocol stores, syncs, checks and fetches over real hosts on
// 127.0.0.1, and sees the receiver refuse a block that fails its CID and a
// store over its quota.
func TestShardProtocol(t *testing.T) {
	ctx := context.Background()
	c, p, st := pair(t, ServiceOptions{MaxBytes: 1 << 20})
	b, _ := blockstore.NewBlock(make([]byte, 300000))
	if err := c.Store(ctx, p, b, 0); err != nil {
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
	got, err := c.Fetch(ctx, p, b.Cid())
	if err != nil || len(got) != 300000 {
		t.Fatalf("fetch: %d %v", len(got), err)
	}
	var re *wire.RemoteError
	other, _ := blockstore.NewBlock([]byte("other"))
	bad, _ := blocks.NewBlockWithCid([]byte("not it"), other.Cid())
	if err := c.Store(ctx, p, bad, 0); !errors.As(err, &re) || re.Code != wire.CodeHash {
		t.Fatalf("bad block: %v", err)
	}
	big, _ := blockstore.NewBlock(make([]byte, 900000))
	if err := c.Store(ctx, p, big, 0); !errors.As(err, &re) || re.Code != wire.CodeFull {
		t.Fatalf("over quota: %v", err)
	}
	if _, err := c.Fetch(ctx, p, big.Cid()); !errors.As(err, &re) || re.Code != wire.CodeNotFound {
		t.Fatalf("missing block: %v", err)
	}
}

// TestQuotaConcurrentStores sends many stores at once to a peer with room
// for ten of them: exactly ten are taken, the rest answered "full", and
// the store never holds more than its quota.
func TestQuotaConcurrentStores(t *testing.T) {
	ctx := context.Background()
	const quota, size, n = 1 << 20, 100000, 64
	c, p, st, svc := pairService(t, ServiceOptions{MaxBytes: quota})
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		data := make([]byte, size)
		data[0], data[1] = byte(i), 0xa5
		b, _ := blockstore.NewBlock(data)
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.Store(ctx, p, b, 0)
		}()
	}
	wg.Wait()
	stored := 0
	for _, err := range errs {
		var re *wire.RemoteError
		switch {
		case err == nil:
			stored++
		case !errors.As(err, &re) || re.Code != wire.CodeFull:
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
	if stats.Bytes > quota || stats.Bytes != svc.Used() {
		t.Fatalf("store holds %d bytes, service counts %d, quota %d", stats.Bytes, svc.Used(), quota)
	}
}

// TestMalformedFrameEndsStream sends garbage: the receiver answers ERROR
// malformed and ends the stream, and keeps serving new streams.
func TestMalformedFrameEndsStream(t *testing.T) {
	ctx := context.Background()
	c, p, _ := pair(t, ServiceOptions{})
	s, err := c.h.NewStream(ctx, p, ShardProtocol)
	if err != nil {
		t.Fatal(err)
	}
	s.Write([]byte{9, 9, 9, 9, 9, 9})
	f, _, err := wire.ReadFrame(bufio.NewReader(s), nil)
	if err != nil || f.Type != wire.TypeError {
		t.Fatalf("answer to garbage: %v %v", f.Type, err)
	}
	e, _ := wire.ParseError(f.Payload)
	if e.Code != wire.CodeMalformed {
		t.Fatalf("code %v", e.Code)
	}
	s.Close()
	// An unknown request type on a fresh stream is answered too.
	s, _ = c.h.NewStream(ctx, p, ShardProtocol)
	wire.WriteFrame(s, 0x7f)
	f, _, err = wire.ReadFrame(bufio.NewReader(s), nil)
	if err != nil || f.Type != wire.TypeError {
		t.Fatalf("answer to unknown type: %v %v", f.Type, err)
	}
	s.Close()
	b, _ := blockstore.NewBlock([]byte("still serving"))
	if err := c.Store(ctx, p, b, 0); err != nil {
		t.Fatalf("service died: %v", err)
	}
}

// TestPooledStreamSurvivesReconnect drops the connection after a request
// and reconnects: the next request must not fail on the dead pooled stream.
func TestPooledStreamSurvivesReconnect(t *testing.T) {
	ctx := context.Background()
	c, p, _ := pair(t, ServiceOptions{})
	b, _ := blockstore.NewBlock([]byte("first"))
	if err := c.Store(ctx, p, b, 0); err != nil {
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
	if err := c.Store(ctx, p, b2, 0); err != nil {
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
	c, p, _, svc := pairService(t, ServiceOptions{})
	const budget = 1 << 20
	svc.inflight = semaphore.NewWeighted(budget)
	big, _ := blockstore.NewBlock(make([]byte, 700<<10))
	parts := wire.StoreParts(0, big.Cid().Bytes(), big.RawData())
	var frame bytes.Buffer
	if err := wire.WriteFrame(&frame, wire.TypeStore, parts...); err != nil {
		t.Fatal(err)
	}
	s, err := c.h.NewStream(ctx, p, ShardProtocol)
	if err != nil {
		t.Fatal(err)
	}
	raw := frame.Bytes()
	if _, err := s.Write(raw[:1000]); err != nil { // header and a little payload
		t.Fatal(err)
	}
	second, _ := blockstore.NewBlock(bytes.Repeat([]byte{1}, 600<<10))
	done := make(chan error, 1)
	go func() { done <- c.Store(ctx, p, second, 0) }()
	// The stalled frame holds its payload: what is left cannot take the
	// second store, which waits.
	for svc.inflight.TryAcquire(budget - int64(len(raw)) + 100) {
		svc.inflight.Release(budget - int64(len(raw)) + 100)
		runtime.Gosched() // until the service has read the stalled header
	}
	if _, err := s.Write(raw[1000:]); err != nil {
		t.Fatal(err)
	}
	f, _, err := wire.ReadFrame(bufio.NewReader(s), nil)
	if err != nil || f.Type != wire.TypeOK {
		t.Fatalf("stalled store: %v %v", f.Type, err)
	}
	if err := <-done; err != nil {
		t.Fatalf("waiting store: %v", err)
	}
	s.Close()
	if err := c.Sync(ctx, p); err != nil {
		t.Fatal(err)
	}
	if !svc.inflight.TryAcquire(budget) {
		t.Fatal("payload bytes not given back to the budget")
	}
}
