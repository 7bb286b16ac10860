package dht

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	pb "github.com/libp2p/go-libp2p-kad-dht/pb"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-msgio/pbio"
)

// kadSink is a DHT server that counts the streams opened to it and the
// ADD_PROVIDERs it reads; each stream is reset after perStream messages
// (kad resets one idle for a minute; 0: never), and with junk, each
// message is answered with junk.
type kadSink struct {
	host.Host
	streams, adds atomic.Int64
}

func newKadSink(t *testing.T, perStream int, junk []byte) *kadSink {
	k := &kadSink{Host: bareHost(t)}
	k.SetStreamHandler(kadProtocol, func(s network.Stream) {
		k.streams.Add(1)
		r := pbio.NewDelimitedReader(s, 1<<20)
		for n := 0; perStream == 0 || n < perStream; n++ {
			var m pb.Message
			if err := r.ReadMsg(&m); err != nil {
				break
			}
			if m.GetType() == pb.Message_ADD_PROVIDER {
				k.adds.Add(1)
			}
			if junk != nil {
				if _, err := s.Write(junk); err != nil {
					break
				}
			}
		}
		s.Reset()
	})
	return k
}

func addProvider(i int) *pb.Message {
	return &pb.Message{Type: pb.Message_ADD_PROVIDER, Key: blockCID(string(rune('a' + i))).Hash()}
}

func sinkAndSender(t *testing.T, perStream int, junk []byte) (*kadSink, *providerSender) {
	t.Helper()
	k := newKadSink(t, perStream, junk)
	h := bareHost(t)
	if err := h.Connect(context.Background(), peer.AddrInfo{ID: k.ID(), Addrs: k.Addrs()}); err != nil {
		t.Fatal(err)
	}
	ps := newProviderSender(nil, h, kadProtocol)
	t.Cleanup(ps.close)
	return k, ps
}

// held reports whether ps keeps a stream (or an entry) for p.
func (ps *providerSender) held(p peer.ID) bool {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return ps.streams[p] != nil
}

// TestProviderStreamSurvivesResets: kad's own sender, after it found a
// peer's stream reset four times (kad resets one idle for a minute), opens a
// stream for every message from then on (the same rounds through it: 60
// messages on 24 streams, and rising). The sink resets each stream after
// 10 messages, six times over: every message must arrive, on one stream
// per 10.
func TestProviderStreamSurvivesResets(t *testing.T) {
	const per, rounds = 10, 6
	k, ps := sinkAndSender(t, per, nil)
	ctx := context.Background()
	for r := 0; r < rounds; r++ {
		for i := 0; i < per; i++ {
			if err := ps.SendMessage(ctx, k.ID(), addProvider(r*per+i)); err != nil {
				t.Fatalf("round %d, message %d: %v", r, i, err)
			}
		}
		// The sink resets the stream after the round's last message; the
		// sender notices (its reader ends) before the next round writes.
		if !eventually(func() bool { return !ps.held(k.ID()) }) {
			t.Fatalf("round %d: the sender never noticed its stream reset", r)
		}
	}
	if got := k.adds.Load(); got != per*rounds {
		t.Fatalf("the sink read %d ADD_PROVIDERs, want %d", got, per*rounds)
	}
	if got := k.streams.Load(); got != rounds {
		t.Fatalf("%d streams opened for %d messages in %d rounds, want %d", got, per*rounds, rounds, rounds)
	}
}

// TestProviderStreamIdleReplaced: a stream unused for the idle time is
// closed and the next message opens a new one, before kad's idle reset
// could meet a write in flight.
func TestProviderStreamIdleReplaced(t *testing.T) {
	k, ps := sinkAndSender(t, 0, nil)
	ctx := context.Background()
	send := func(i int) {
		if err := ps.SendMessage(ctx, k.ID(), addProvider(i)); err != nil {
			t.Fatal(err)
		}
	}
	send(0)
	send(1)
	if !eventually(func() bool { return k.adds.Load() == 2 }) || k.streams.Load() != 1 {
		t.Fatalf("two messages in a row: %d read on %d streams, want 2 on 1", k.adds.Load(), k.streams.Load())
	}
	ps.mu.Lock()
	st := ps.streams[k.ID()]
	ps.mu.Unlock()
	st.mu.Lock()
	st.last = time.Now().Add(-ps.idle)
	st.mu.Unlock()
	send(2)
	if !eventually(func() bool { return k.adds.Load() == 3 && k.streams.Load() == 2 }) {
		t.Fatalf("after an idle stream: %d messages read on %d streams, want 3 on 2", k.adds.Load(), k.streams.Load())
	}
}

// TestProviderStreamJunkDropped: a peer that writes on the stream (kad
// answers no ADD_PROVIDER) has it reset after at most 1 KiB read, and the
// next message goes on a new stream.
func TestProviderStreamJunkDropped(t *testing.T) {
	junk := make([]byte, 1<<20)
	k, ps := sinkAndSender(t, 0, junk)
	ctx := context.Background()
	if err := ps.SendMessage(ctx, k.ID(), addProvider(0)); err != nil {
		t.Fatal(err)
	}
	if !eventually(func() bool { return !ps.held(k.ID()) }) {
		t.Fatal("a stream the peer writes junk on is kept")
	}
	if err := ps.SendMessage(ctx, k.ID(), addProvider(1)); err != nil {
		t.Fatal(err)
	}
	if !eventually(func() bool { return k.adds.Load() == 2 }) {
		t.Fatalf("the sink read %d ADD_PROVIDERs, want 2", k.adds.Load())
	}
	if got := k.streams.Load(); got != 2 {
		t.Fatalf("%d streams, want 2", got)
	}
}

// TestProviderSenderClose: close resets the streams and returns once their
// readers ended; a message after it is refused.
func TestProviderSenderClose(t *testing.T) {
	k, ps := sinkAndSender(t, 0, nil)
	if err := ps.SendMessage(context.Background(), k.ID(), addProvider(0)); err != nil {
		t.Fatal(err)
	}
	ps.close()
	if ps.held(k.ID()) {
		t.Fatal("an entry is left after close")
	}
	if err := ps.SendMessage(context.Background(), k.ID(), addProvider(1)); err == nil {
		t.Fatal("a message after close was sent")
	}
}
