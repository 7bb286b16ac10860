package dht

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"sync"
	"time"

	pb "github.com/libp2p/go-libp2p-kad-dht/pb"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"google.golang.org/protobuf/proto"
)

// streamIdle is how long a peer's stream may go unused before the next
// message opens a new one. kad resets an inbound stream idle for 1 minute;
// closing ours well before that keeps a message from being written into a
// stream the peer is resetting at that moment (it would be lost unseen:
// ADD_PROVIDER has no reply).
const streamIdle = 30 * time.Second

// providerSender sends the ADD_PROVIDERs of provide: one stream per peer,
// kept open across messages and announcing bursts, replaced when it breaks.
//
// kad-dht's own sender keeps a stream per peer too, but after it found one
// broken four times it opens, negotiates and closes a stream for every
// message, for as long as the connection lasts (kad resets a stream idle
// for a minute, which is one way to break it). Seen on a 5-node testnet
// after an hour of puts and gets: half of each ADD_PROVIDER's cost in
// opening its stream, 8.5 CPU-s to announce a 1 GiB put, against 2–3 on
// kept streams.
type providerSender struct {
	kad   pb.MessageSender // requests (FIND_NODE and the like) go to kad's own
	h     host.Host
	proto protocol.ID
	idle  time.Duration

	mu      sync.Mutex
	streams map[peer.ID]*peerStream
	live    map[network.Stream]struct{} // every stream open, for close
	closed  bool
	readers sync.WaitGroup
}

// peerStream is the stream to one peer; mu serialises its writes.
type peerStream struct {
	mu   sync.Mutex
	s    network.Stream // nil: none open
	last time.Time      // last message written
	dead chan struct{}  // closed when s is found broken or closed by the peer
}

func newProviderSender(kad pb.MessageSender, h host.Host, proto protocol.ID) *providerSender {
	return &providerSender{kad: kad, h: h, proto: proto, idle: streamIdle,
		streams: map[peer.ID]*peerStream{}, live: map[network.Stream]struct{}{}}
}

func (ps *providerSender) SendRequest(ctx context.Context, p peer.ID, m *pb.Message) (*pb.Message, error) {
	return ps.kad.SendRequest(ctx, p, m)
}

// SendMessage writes m to p's stream, opening one if none is open, the
// open one broke or has been idle for ps.idle. A write that fails is tried
// once more on a new stream.
func (ps *providerSender) SendMessage(ctx context.Context, p peer.ID, m *pb.Message) error {
	body, err := proto.Marshal(m)
	if err != nil {
		return err
	}
	msg := binary.AppendUvarint(make([]byte, 0, binary.MaxVarintLen64+len(body)), uint64(len(body)))
	msg = append(msg, body...)
	st := ps.peer(p)
	if st == nil {
		return errors.New("dht: sender closed")
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	for attempt := 0; ; attempt++ {
		s, err := ps.stream(ctx, p, st)
		if err != nil {
			ps.drop(p, st)
			return err
		}
		deadline, ok := ctx.Deadline()
		if !ok {
			deadline = time.Now().Add(putProviderLimit)
		}
		_ = s.SetWriteDeadline(deadline)
		_, err = s.Write(msg)
		_ = s.SetWriteDeadline(time.Time{})
		if err == nil {
			st.last = time.Now()
			return nil
		}
		_ = s.Reset()
		st.s = nil
		if attempt > 0 || ctx.Err() != nil {
			ps.drop(p, st)
			return err
		}
	}
}

// drop removes p's entry st, which holds no stream; st.mu is held.
func (ps *providerSender) drop(p peer.ID, st *peerStream) {
	ps.mu.Lock()
	if ps.streams[p] == st {
		delete(ps.streams, p)
	}
	ps.mu.Unlock()
}

// forget drops p's entry when its stream s ended, if it still is st and
// holds no other stream: the map holds only peers with a stream open, or
// one being written to. It never waits for st: a writer busy with it keeps
// it.
func (ps *providerSender) forget(p peer.ID, st *peerStream, s network.Stream) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	delete(ps.live, s)
	if ps.streams[p] != st || !st.mu.TryLock() {
		return
	}
	if st.s == s {
		st.s = nil
	}
	if st.s == nil {
		delete(ps.streams, p)
	}
	st.mu.Unlock()
}

// peer returns p's entry, made on first use; nil once closed.
func (ps *providerSender) peer(p peer.ID) *peerStream {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.closed {
		return nil
	}
	st := ps.streams[p]
	if st == nil {
		st = &peerStream{}
		ps.streams[p] = st
	}
	return st
}

// stream returns st's open stream, or opens one. Called with st.mu held.
func (ps *providerSender) stream(ctx context.Context, p peer.ID, st *peerStream) (network.Stream, error) {
	if st.s != nil {
		select {
		case <-st.dead:
			_ = st.s.Reset()
			st.s = nil
		default:
			if time.Since(st.last) >= ps.idle {
				_ = st.s.Close()
				st.s = nil
			}
		}
	}
	if st.s != nil {
		return st.s, nil
	}
	s, err := ps.h.NewStream(ctx, p, ps.proto)
	if err != nil {
		return nil, err
	}
	dead := make(chan struct{})
	ps.mu.Lock()
	if ps.closed {
		ps.mu.Unlock()
		_ = s.Reset()
		return nil, errors.New("dht: sender closed")
	}
	ps.readers.Add(1)
	ps.live[s] = struct{}{}
	ps.mu.Unlock()
	// The peer never writes on it: a read returns only when it closes or
	// resets the stream (or the connection ends), and the next message
	// then goes on a new one instead of into the void.
	go func() {
		defer ps.readers.Done()
		_, _ = io.Copy(io.Discard, io.LimitReader(s, 1<<10))
		_ = s.Reset()
		close(dead)
		ps.forget(p, st, s)
	}()
	st.s, st.dead, st.last = s, dead, time.Now()
	return s, nil
}

// close resets every stream and waits for their readers.
func (ps *providerSender) close() {
	ps.mu.Lock()
	ps.closed = true
	clear(ps.streams)
	live := ps.live
	ps.live = map[network.Stream]struct{}{}
	ps.mu.Unlock()
	for s := range live {
		_ = s.Reset()
	}
	ps.readers.Wait()
}
