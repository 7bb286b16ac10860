package dht

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
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
	eofs          atomic.Int64 // streams the sender closed cleanly
}

func newKadSink(t *testing.T, perStream int, junk []byte) *kadSink {
	k := &kadSink{Host: bareHost(t)}
	k.SetStreamHandler(kadProtocol, func(s network.Stream) {
		k.streams.Add(1)
		r := pbio.NewDelimitedReader(s, 1<<20)
		for n := 0; perStream == 0 || n < perStream; n++ {
			var m pb.Message
			if err := r.ReadMsg(&m); err != nil {
				if errors.Is(err, io.EOF) {
					k.eofs.Add(1)
				}
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
// closed (cleanly: the peer reads all before it) and the next message
// opens a new one, before kad's idle reset could meet a write in flight.
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
	st.lock <- struct{}{}
	st.s.last.Store(time.Now().Add(-ps.idle).UnixNano())
	<-st.lock
	send(2)
	if !eventually(func() bool { return k.adds.Load() == 3 && k.streams.Load() == 2 && k.eofs.Load() == 1 }) {
		t.Fatalf("after an idle stream: %d messages read on %d streams, %d closed cleanly; want 3 on 2, 1",
			k.adds.Load(), k.streams.Load(), k.eofs.Load())
	}
}

// TestProviderStreamIdleClosed: a stream idle for the idle time is closed
// cleanly by its watcher, with no message after it, and forgotten.
func TestProviderStreamIdleClosed(t *testing.T) {
	k, ps := sinkAndSender(t, 0, nil)
	ps.idle = 50 * time.Millisecond
	if err := ps.SendMessage(context.Background(), k.ID(), addProvider(0)); err != nil {
		t.Fatal(err)
	}
	if !eventually(func() bool { return k.eofs.Load() == 1 && !ps.held(k.ID()) }) {
		t.Fatalf("an idle stream was not closed: %d clean closes, entry held %v", k.eofs.Load(), ps.held(k.ID()))
	}
	if k.adds.Load() != 1 {
		t.Fatalf("the sink read %d ADD_PROVIDERs, want 1", k.adds.Load())
	}
}

// TestProviderWriteRetried: a write into a stream that broke before its
// watcher noticed is tried again on a new stream.
func TestProviderWriteRetried(t *testing.T) {
	k, ps := sinkAndSender(t, 0, nil)
	ctx := context.Background()
	if err := ps.SendMessage(ctx, k.ID(), addProvider(0)); err != nil {
		t.Fatal(err)
	}
	broken, err := ps.h.NewStream(ctx, k.ID(), kadProtocol)
	if err != nil {
		t.Fatal(err)
	}
	broken.Reset()
	ps.mu.Lock()
	st := ps.streams[k.ID()]
	ps.mu.Unlock()
	st.lock <- struct{}{}
	ss := &sendStream{Stream: broken, dead: make(chan struct{})}
	ss.last.Store(time.Now().UnixNano())
	st.s = ss
	<-st.lock
	if err := ps.SendMessage(ctx, k.ID(), addProvider(1)); err != nil {
		t.Fatalf("a message after a broken stream: %v", err)
	}
	if !eventually(func() bool { return k.adds.Load() == 2 }) {
		t.Fatalf("the sink read %d ADD_PROVIDERs, want 2", k.adds.Load())
	}
}

// waitingIn counts goroutines blocked in a select inside fn.
func waitingIn(fn string) int {
	buf := make([]byte, 1<<20)
	n := 0
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if strings.Contains(g, "[select") && strings.Contains(g, fn) {
			n++
		}
	}
	return n
}

// TestProviderDroppedEntryNotUsed: a message that waited for an entry
// dropped meanwhile (its holder's write failed) goes on the peer's new
// entry, not on the dropped one, where its stream would be kept by nobody.
func TestProviderDroppedEntryNotUsed(t *testing.T) {
	k, ps := sinkAndSender(t, 0, nil)
	st := ps.peer(k.ID())
	st.lock <- struct{}{}
	sent := make(chan error, 1)
	go func() { sent <- ps.SendMessage(context.Background(), k.ID(), addProvider(0)) }()
	if !eventually(func() bool { return waitingIn("(*providerSender).acquire") == 1 }) {
		t.Fatal("the message never waited for the entry")
	}
	ps.drop(k.ID(), st)
	<-st.lock
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if st.s != nil || !ps.held(k.ID()) {
		t.Fatalf("the message went on the dropped entry (its stream %v; the peer has an entry: %v)", st.s != nil, ps.held(k.ID()))
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
	if ps.held(k.ID()) || len(ps.live) != 0 {
		t.Fatalf("after close: entry held %v, %d streams open", ps.held(k.ID()), len(ps.live))
	}
	if err := ps.SendMessage(context.Background(), k.ID(), addProvider(1)); err == nil {
		t.Fatal("a message after close was sent")
	}
}

// TestProviderStalledPeerSkipped performs the attack of a peer that takes
// ADD_PROVIDERs and never reads them: once its stream's window is full, a
// write waits out its limit. That write marks the peer stalled; the next
// messages to it fail at once instead of each waiting its own limit (and
// holding up its provide), until the time out ends, when a new stream is
// tried.
func TestProviderStalledPeerSkipped(t *testing.T) {
	rogue, ps, send := stallingPeer(t)
	// Fill the window: a stream never read takes 256 KiB.
	var err error
	sent := 0
	for ; sent < 1<<20 && err == nil; sent++ {
		err = send(sent)
	}
	if !errors.Is(err, errStalled) {
		t.Fatalf("after %d messages into a stream never read: %v, want errStalled", sent, err)
	}
	if !ps.isStalled(rogue.ID()) || ps.held(rogue.ID()) {
		t.Fatalf("the stalling peer is not timed out (%v) or keeps an entry (%v)", ps.isStalled(rogue.ID()), ps.held(rogue.ID()))
	}
	for i := range 100 {
		if err := ps.SendMessage(context.Background(), rogue.ID(), addProvider(i)); !errors.Is(err, errStalled) {
			t.Fatalf("message %d to a stalled peer: %v, want errStalled", i, err)
		}
	}
	if got := rogue.streams.Load(); got != 1 || ps.held(rogue.ID()) {
		t.Fatalf("a stalled peer was given %d streams (want 1), entry held %v", got, ps.held(rogue.ID()))
	}
	// Its time out over, the peer is tried again, on a new stream.
	ps.mu.Lock()
	ps.stalled[rogue.ID()] = time.Now()
	ps.mu.Unlock()
	if err := send(0); err != nil {
		t.Fatalf("after the time out: %v", err)
	}
	if !eventually(func() bool { return rogue.streams.Load() == 2 }) {
		t.Fatalf("after the time out: %d streams, want 2", rogue.streams.Load())
	}
}

// TestProviderSlowWriteNotStall: a write that waits out its limit on a
// stream that has not carried a window cannot be the peer's doing (the
// connection is busy with other streams): the message fails, the peer is
// not timed out. The window is made larger than the peer ever lets through.
func TestProviderSlowWriteNotStall(t *testing.T) {
	rogue, ps, send := stallingPeer(t)
	ps.stallWindow = 1 << 30
	var err error
	for i := 0; i < 1<<20 && err == nil; i++ {
		err = send(i)
	}
	if err == nil || errors.Is(err, errStalled) || ps.isStalled(rogue.ID()) {
		t.Fatalf("a write timed out below the window: %v, peer timed out %v; want a timeout and no time out", err, ps.isStalled(rogue.ID()))
	}
}

// rogueKad is a DHT peer that takes streams and never reads them.
type rogueKad struct {
	host.Host
	streams atomic.Int64
}

// stallingPeer returns a peer that never reads its ADD_PROVIDER streams, a
// sender connected to it (stallWait 100 ms), and a send with a 300 ms limit.
func stallingPeer(t *testing.T) (*rogueKad, *providerSender, func(i int) error) {
	rogue := &rogueKad{Host: bareHost(t)}
	hold := make(chan struct{})
	rogue.SetStreamHandler(kadProtocol, func(s network.Stream) {
		rogue.streams.Add(1)
		<-hold // reads nothing
		s.Reset()
	})
	t.Cleanup(func() { close(hold) })
	h := bareHost(t)
	if err := h.Connect(context.Background(), peer.AddrInfo{ID: rogue.ID(), Addrs: rogue.Addrs()}); err != nil {
		t.Fatal(err)
	}
	ps := newProviderSender(nil, h, kadProtocol)
	t.Cleanup(ps.close)
	ps.stallWait = 100 * time.Millisecond
	send := func(i int) error {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		return ps.SendMessage(ctx, rogue.ID(), addProvider(i))
	}
	return rogue, ps, send
}

// TestProviderStalledBounded: peer IDs are free, so the peers timed out at
// once are at most maxStalled.
func TestProviderStalledBounded(t *testing.T) {
	ps := newProviderSender(nil, nil, kadProtocol)
	for i := range maxStalled + 10 {
		ps.stall(peer.ID(fmt.Sprintf("peer %d", i)))
	}
	if n := len(ps.stalled); n != maxStalled {
		t.Fatalf("%d peers timed out, want at most %d", n, maxStalled)
	}
}
