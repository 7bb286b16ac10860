package p2phost

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"testing"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
)

// writeLog is a net.Conn that records each write.
type writeLog struct {
	net.Conn
	writes [][]byte
	fail   error
}

func (w *writeLog) Write(b []byte) (int, error) {
	if w.fail != nil {
		return 0, w.fail
	}
	w.writes = append(w.writes, bytes.Clone(b))
	return len(b), nil
}

func TestBatchConnCoalesces(t *testing.T) {
	raw := &writeLog{}
	c := &batchConn{Conn: raw}
	var want []byte
	put := func(n int, fill byte) {
		b := bytes.Repeat([]byte{fill}, n)
		want = append(want, b...)
		if k, err := c.Write(b); k != n || err != nil {
			t.Fatalf("write %d: %d, %v", n, k, err)
		}
	}
	put(10, 'a') // outside a batch: straight through
	if len(raw.writes) != 1 {
		t.Fatalf("unbatched write held back: %d writes", len(raw.writes))
	}
	c.begin()
	for i := 0; i < 4; i++ {
		put(16<<10+22, byte('b'+i)) // four TLS records
	}
	if len(raw.writes) != 1 {
		t.Fatalf("batched records went out before end: %d writes", len(raw.writes))
	}
	if err := c.end(); err != nil {
		t.Fatal(err)
	}
	if len(raw.writes) != 2 {
		t.Fatalf("four records took %d writes, want one", len(raw.writes)-1)
	}
	// A batch larger than coalesceMax goes out in pieces, in order.
	c.begin()
	for i := 0; i < 20; i++ {
		put(16<<10+22, byte('A'+i))
	}
	put(coalesceMax, 'z')
	if err := c.end(); err != nil {
		t.Fatal(err)
	}
	if got := bytes.Join(raw.writes, nil); !bytes.Equal(got, want) {
		t.Fatal("bytes reordered or lost")
	}
	for _, w := range raw.writes {
		if len(w) > coalesceMax {
			t.Fatalf("a write of %d bytes, more than %d", len(w), coalesceMax)
		}
	}
	// A failed flush fails end, and nothing stays buffered.
	raw.fail = errors.New("broken")
	c.begin()
	put(100, 'x')
	if err := c.end(); !errors.Is(err, raw.fail) {
		t.Fatalf("end after a failed write: %v", err)
	}
	if len(c.buf) != 0 {
		t.Fatal("a failed batch stayed buffered")
	}
	// The failure sticks: records after lost ones must never go out.
	raw.fail = nil
	c.begin()
	if _, err := c.Write([]byte("late")); err == nil {
		t.Fatal("a write after a failed batch succeeded")
	}
	_ = c.end()
	if _, err := c.Write([]byte("late")); err == nil {
		t.Fatal("an unbatched write after a failed batch succeeded")
	}
}

// TestCoalescedTLSBothWays moves data both ways at once over hosts with the
// coalescing TLS transport and yamux frames of up to maxFrame, with writes
// of many sizes; and between such a host and a stock libp2p host (yamux's
// 64 KiB frames, TLS records one write each).
func TestCoalescedTLSBothWays(t *testing.T) {
	t.Run("umbra hosts", func(t *testing.T) {
		h1, h2 := twoHosts(t)
		echoBothWays(t, h1, h2)
	})
	t.Run("stock libp2p peer", func(t *testing.T) {
		h1, _ := twoHosts(t)
		h2, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h2.Close() })
		echoBothWays(t, h1, h2)
		if sc := h1.Network().ConnsToPeer(h2.ID()); len(sc) == 0 || sc[0].ConnState().StreamMultiplexer != yamux.ID {
			t.Fatalf("connection not multiplexed by yamux: %+v", sc)
		}
	})
}

// echoBothWays has h2 echo 6 MiB that h1 sends while h1 reads the echo.
func echoBothWays(t *testing.T, h1, h2 host.Host) {
	payload := make([]byte, 6<<20)
	rand.Read(payload)
	send := func(s network.Stream) error {
		for off, n := 0, 1; off < len(payload); n = n*3 + 7 {
			n = min(n%(1<<20)+1, len(payload)-off)
			if _, err := s.Write(payload[off : off+n]); err != nil {
				return err
			}
			off += n
		}
		return s.CloseWrite()
	}
	h2.SetStreamHandler("/umbra/echo-test/1", func(s network.Stream) {
		defer s.Close()
		errc := make(chan error, 1)
		go func() { errc <- send(s) }()
		got, _ := io.ReadAll(s)
		if !bytes.Equal(got, payload) {
			s.Reset()
			return
		}
		<-errc
	})
	ctx := context.Background()
	if err := h1.Connect(ctx, peer.AddrInfo{ID: h2.ID(), Addrs: h2.Addrs()}); err != nil {
		t.Fatal(err)
	}
	s, err := h1.NewStream(ctx, h2.ID(), "/umbra/echo-test/1")
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- send(s) }()
	got, err := io.ReadAll(s)
	if err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("received %d bytes, differs (%v)", len(got), err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if sc := h1.Network().ConnsToPeer(h2.ID()); len(sc) == 0 || sc[0].ConnState().Security != "/tls/1.0.0" {
		t.Fatalf("connection not secured by TLS: %+v", sc)
	}
}

// twoHosts starts two hosts on 127.0.0.1 over TCP, closed in cleanup.
func twoHosts(tb testing.TB) (host.Host, host.Host) {
	tb.Helper()
	var hs [2]host.Host
	for i := range hs {
		_, k, _ := ed25519.GenerateKey(rand.Reader)
		h, err := New(Options{Key: k, Listen: []string{"/ip4/127.0.0.1/tcp/0"}})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { h.Close() })
		hs[i] = h
	}
	return hs[0], hs[1]
}
