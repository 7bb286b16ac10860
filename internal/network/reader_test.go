package network

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/umbra-store/umbra/blockstore"
	"github.com/umbra-store/umbra/internal/engine"
	"github.com/umbra-store/umbra/internal/format"
	"github.com/umbra-store/umbra/internal/seal"
	"github.com/umbra-store/umbra/internal/shard"
	"github.com/umbra-store/umbra/keyring"
)

// stallingHolder makes h answer every FETCH with a BLOCK header declaring
// shard.MaxPayload bytes, send all but the last, and wait: a reader that
// took the header at its word would hold a 4 MiB buffer per stream until its
// fetch timeout. It returns the count of FETCHes it was sent.
func stallingHolder(h host.Host) *atomic.Int64 {
	var asked atomic.Int64
	junk := make([]byte, shard.MaxPayload-1)
	h.SetStreamHandler(shard.Protocol, func(st network.Stream) {
		defer st.Reset()
		if _, _, err := shard.ReadFrame(st, nil); err != nil {
			return
		}
		asked.Add(1)
		hdr := []byte{shard.Version, byte(shard.TypeBlock), 0, 0, 0, 0}
		binary.BigEndian.PutUint32(hdr[2:], shard.MaxPayload)
		if _, err := st.Write(hdr); err != nil {
			return
		}
		if _, err := st.Write(junk); err != nil {
			return
		}
		io.Copy(io.Discard, st) // until the reader gives up
	})
	return &asked
}

// rogueHost starts an attacker's libp2p host (no limits of its own)
// connected to n.
func rogueHost(t *testing.T, n testNode) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.ResourceManager(&network.NullResourceManager{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	if err := h.Connect(context.Background(), peer.AddrInfo{ID: n.id, Addrs: n.h.Addrs()}); err != nil {
		t.Fatal(err)
	}
	return h
}

// heapPeak samples HeapInuse until stop is closed and returns the peak
// (measurement, not synchronisation).
func heapPeak(stop <-chan struct{}) <-chan uint64 {
	out := make(chan uint64, 1)
	go func() {
		var peak uint64
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
			select {
			case <-stop:
				out <- peak
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return out
}

func heapNow() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// TestReaderHoldsOnlyWhatTheManifestNames is the review's finding on the
// reading side: every FETCH reply was read into a buffer of the size the
// holder's header declared (up to 4 MiB) although the manifest says each
// shard's size. A reply larger than asked for is refused unread, and its
// sender avoided.
func TestReaderHoldsOnlyWhatTheManifestNames(t *testing.T) {
	reader := newNodes(t, 1, false, 0)[0]
	holder := rogueHost(t, reader)
	asked := stallingHolder(holder)
	base := heapNow()
	stop := make(chan struct{})
	peak := heapPeak(stop)
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, _ := blockstore.NewBlock([]byte{byte(i), byte(i >> 8), 1, 2, 3})
			if got, err := reader.net.Fetch(context.Background(), b.Cid(), 5, []byte(holder.ID()), false, nil); err == nil {
				t.Errorf("fetch %d returned %d bytes", i, len(got))
			}
		}()
	}
	wg.Wait()
	close(stop)
	// What remains is the muxer's receive windows for the rogue's streams,
	// bounded per peer by the resource manager (32 MiB), not 100 × 4 MiB.
	if grew := int64(<-peak) - int64(base); grew > 40<<20 {
		t.Fatalf("one rogue holder pinned %d MiB of the reader's heap for 100 fetches of 5-byte shards", grew>>20)
	}
	// Avoided: asked again, it is not. (Counted at the rogue: asking it
	// again would not be slow, as its oversized header is refused unread.)
	before := asked.Load()
	if before == 0 {
		t.Fatal("the rogue holder was never asked")
	}
	b, _ := blockstore.NewBlock([]byte("again"))
	if _, err := reader.net.Fetch(context.Background(), b.Cid(), 5, []byte(holder.ID()), true, nil); err == nil {
		t.Fatal("fetched from the rogue")
	}
	if n := asked.Load(); n != before {
		t.Fatalf("the oversized sender was asked again (%d FETCHes, %d before)", n, before)
	}
}

// TestCraftedManifestCannotMakeReaderHoldGiB: the same through the engine,
// as a capability creator mounts it — 4 chunks at k = 64, m = 0, each
// chunk's 1 KiB shards hinted to a rogue holder that declares 4 MiB
// answers. The reader used to hold ~1 GiB for 10 s.
func TestCraftedManifestCannotMakeReaderHoldGiB(t *testing.T) {
	reader := newNodes(t, 1, false, 0)[0]
	const k, chunks = 64, 4
	n := &format.Node{Level: 0, K: k, M: 0, Suite: seal.SuiteAES256GCM}
	for c := range chunks {
		r := rogueHost(t, reader)
		stallingHolder(r)
		n.Peers = append(n.Peers, []byte(r.ID()))
		size := uint64(k<<10 - 100)
		ent := format.Entry{SealedLen: seal.SealedLen(int(size)), Key: keyring.GenerateKey(), Size: size}
		for range k {
			var d [32]byte
			rand.Read(d[:])
			ent.Shards = append(ent.Shards, d)
			ent.Hints = append(ent.Hints, uint16(c))
		}
		n.Entries = append(n.Entries, ent)
		n.Size += size
	}
	key := keyring.GenerateKey()
	raw, err := n.Encode(key)
	if err != nil {
		t.Fatal(err)
	}
	root, d := blockstore.NewBlock(raw)
	if err := reader.store.Put(context.Background(), root); err != nil {
		t.Fatal(err)
	}
	e := engine.New(reader.store, keyring.Secrets{}, engine.WithNetwork(reader.net))
	base := heapNow()
	stop := make(chan struct{})
	peak := heapPeak(stop)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = e.Get(ctx, keyring.NewReadCap(d, key), io.Discard)
	close(stop)
	if err == nil {
		t.Fatal("a file of shards nobody has was read")
	}
	// What may stay: a yamux receive window (256 KiB) of the rogue's bytes
	// on each stream in flight until its reply is refused — about 50 MiB
	// for these 256 shards, seen up to 57 and once 65 with garbage not yet
	// collected. The attack held ~1 GiB.
	if grew := int64(<-peak) - int64(base); grew > 96<<20 {
		t.Fatalf("a crafted capability made the reader hold %d MiB for 1 KiB shards", grew>>20)
	}
}
