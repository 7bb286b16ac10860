package dht

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"sync"
	"sync/atomic"
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

// A peer that lets a message wait stallWait or more and still not take it,
// on a stream that has carried at least a muxer window (stallWindow, what
// a peer that never reads takes before writes block), gets none for
// stallFor: it takes ADD_PROVIDERs and does not read them. Without that,
// every message to it would wait out its limit, and with it the provides
// it is part of: one stall of putProviderLimit per window of messages, for
// as long as it lasts. A write also waits behind the connection's other
// streams (a put's shards on a slow uplink): on a stream that carried less
// than a window that cannot be the peer's doing, and the penalty is short.
// Provider records are kept by every close peer; one that misses some
// loses nothing the others do not hold.
const (
	stallWait   = 2 * time.Second
	stallFor    = time.Minute
	stallWindow = 255 << 10 // yamux's initial stream window, less the protocol's name
)

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
	// stallWait, stallFor and stallWindow are the constants' (tests
	// change them).
	stallWait, stallFor time.Duration
	stallWindow         int64

	mu      sync.Mutex
	streams map[peer.ID]*peerStream
	live    map[*sendStream]struct{} // every stream open, for close
	stalled map[peer.ID]time.Time    // peers sent nothing until then
	closed  bool
	readers sync.WaitGroup
}

// peerStream is one peer's entry: lock (one slot, so that a wait for it
// ends with the caller's context) is held while a message is written.
type peerStream struct {
	lock chan struct{}
	s    *sendStream // nil: none open
}

// sendStream is a stream with its watcher's state.
type sendStream struct {
	network.Stream
	last atomic.Int64  // unix ns of the last message written
	sent int64         // bytes written (with the entry's lock held)
	dead chan struct{} // closed by the watcher once the stream is not to be used
}

func (ss *sendStream) idleSince() time.Time { return time.Unix(0, ss.last.Load()) }

// errClosed is returned once the DHT is closed.
var errClosed = errors.New("dht: sender closed")

// errStalled is a message not sent to a peer that stalled an earlier one.
var errStalled = errors.New("dht: peer stalled an ADD_PROVIDER: none sent to it for a while")

func newProviderSender(kad pb.MessageSender, h host.Host, proto protocol.ID) *providerSender {
	return &providerSender{kad: kad, h: h, proto: proto, idle: streamIdle,
		stallWait: stallWait, stallFor: stallFor, stallWindow: stallWindow,
		streams: map[peer.ID]*peerStream{}, live: map[*sendStream]struct{}{}, stalled: map[peer.ID]time.Time{}}
}

func (ps *providerSender) SendRequest(ctx context.Context, p peer.ID, m *pb.Message) (*pb.Message, error) {
	return ps.kad.SendRequest(ctx, p, m)
}

// SendMessage writes m to p's stream, opening one if none is open, or the
// open one ended or has been idle for ps.idle. A write that fails is tried
// once more on a new stream; the failed one is closed, not reset, so that
// the peer still reads the messages before it. A write that waited
// ps.stallWait and timed out on a stream that carried a window is not
// tried again: the peer gets no message for ps.stallFor (errStalled, also
// to the messages that waited behind it), and the stream is reset.
func (ps *providerSender) SendMessage(ctx context.Context, p peer.ID, m *pb.Message) error {
	if ps.isStalled(p) {
		return errStalled
	}
	body, err := proto.Marshal(m)
	if err != nil {
		return err
	}
	msg := binary.AppendUvarint(make([]byte, 0, binary.MaxVarintLen64+len(body)), uint64(len(body)))
	msg = append(msg, body...)
	st, err := ps.acquire(ctx, p)
	if err != nil {
		if ps.isStalled(p) { // found out while this message waited
			return errStalled
		}
		return err
	}
	defer func() { <-st.lock }()
	if ps.isStalled(p) { // while this message waited for the stream
		if st.s == nil {
			ps.drop(p, st)
		}
		return errStalled
	}
	for attempt := 0; ; attempt++ {
		ss, err := ps.stream(ctx, p, st)
		if err != nil {
			ps.drop(p, st)
			return err
		}
		deadline, ok := ctx.Deadline()
		if !ok {
			deadline = time.Now().Add(putProviderLimit)
		}
		_ = ss.SetWriteDeadline(deadline)
		start := time.Now()
		n, err := ss.Write(msg)
		ss.sent += int64(n)
		_ = ss.SetWriteDeadline(time.Time{})
		if err == nil {
			ss.last.Store(time.Now().UnixNano())
			return nil
		}
		st.s = nil
		if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() && time.Since(start) >= ps.stallWait && ss.sent >= ps.stallWindow {
			_ = ss.Reset() // what it holds unread is lost either way
			ps.stall(p)
			ps.drop(p, st)
			return errStalled
		}
		_ = ss.CloseWrite() // its watcher resets it once the peer is done
		if attempt > 0 || ctx.Err() != nil {
			ps.drop(p, st)
			return err
		}
	}
}

// isStalled reports whether p stalled a message less than ps.stallFor ago.
func (ps *providerSender) isStalled(p peer.ID) bool {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	until, ok := ps.stalled[p]
	if ok && !time.Now().Before(until) {
		delete(ps.stalled, p)
		return false
	}
	return ok
}

// maxStalled bounds the peers timed out at once (each cost a window of
// messages and stallWait; peer IDs are free). Past it a stalling peer is
// not timed out: its messages wait out their limits, as before the map.
const maxStalled = 4096

// stall sends p nothing for ps.stallFor. Those whose time is out go here,
// so the map holds no more peers than stalled us within ps.stallFor, and
// at most maxStalled.
func (ps *providerSender) stall(p peer.ID) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	now := time.Now()
	for q, until := range ps.stalled {
		if !now.Before(until) {
			delete(ps.stalled, q)
		}
	}
	if len(ps.stalled) < maxStalled {
		ps.stalled[p] = now.Add(ps.stallFor)
	}
}

// acquire returns p's entry with its lock held, or ctx's error. An entry
// dropped while the caller waited for it is not used: a stream opened on it
// would be one nobody finds again.
func (ps *providerSender) acquire(ctx context.Context, p peer.ID) (*peerStream, error) {
	for {
		st := ps.peer(p)
		if st == nil {
			return nil, errClosed
		}
		select {
		case st.lock <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		ps.mu.Lock()
		current := ps.streams[p] == st
		ps.mu.Unlock()
		if current && ctx.Err() == nil {
			return st, nil
		}
		<-st.lock
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
}

// drop removes p's entry st, which holds no stream; its lock is held.
func (ps *providerSender) drop(p peer.ID, st *peerStream) {
	ps.mu.Lock()
	if ps.streams[p] == st {
		delete(ps.streams, p)
	}
	ps.mu.Unlock()
}

// forget drops p's entry when its stream ss ended, if it still is st and
// holds no other stream: the map holds only peers with a stream open, or
// one being written to. It never waits for st: a writer busy with it keeps
// it.
func (ps *providerSender) forget(p peer.ID, st *peerStream, ss *sendStream) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	delete(ps.live, ss)
	if ps.streams[p] != st {
		return
	}
	select {
	case st.lock <- struct{}{}:
	default:
		return
	}
	if st.s == ss {
		st.s = nil
	}
	if st.s == nil {
		delete(ps.streams, p)
	}
	<-st.lock
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
		st = &peerStream{lock: make(chan struct{}, 1)}
		ps.streams[p] = st
	}
	return st
}

// stream returns st's open stream, or opens one. Called with st's lock held.
func (ps *providerSender) stream(ctx context.Context, p peer.ID, st *peerStream) (*sendStream, error) {
	if ss := st.s; ss != nil {
		select {
		case <-ss.dead:
			st.s = nil
		default:
			if time.Since(ss.idleSince()) >= ps.idle {
				_ = ss.CloseWrite()
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
	ss := &sendStream{Stream: s, dead: make(chan struct{})}
	ss.last.Store(time.Now().UnixNano())
	ps.mu.Lock()
	if ps.closed {
		ps.mu.Unlock()
		_ = s.Reset()
		return nil, errClosed
	}
	ps.readers.Add(1)
	ps.live[ss] = struct{}{}
	ps.mu.Unlock()
	go ps.watch(p, st, ss)
	st.s = ss
	return ss, nil
}

// watch reads ss, on which the peer never writes, until the peer closes or
// resets it (or the connection ends), until it sent 1 KiB of anything, or
// until ss has been idle for ps.idle; then marks it dead, so that the next
// message goes on a new stream instead of into the void. An idle stream is
// closed first, and the peer given a moment to read what is on its way.
func (ps *providerSender) watch(p peer.ID, st *peerStream, ss *sendStream) {
	defer ps.readers.Done()
	var buf [1 << 10]byte
	read := 0
	for read < len(buf) {
		_ = ss.SetReadDeadline(ss.idleSince().Add(ps.idle))
		n, err := ss.Read(buf[read:])
		read += n
		var ne net.Error
		if err == nil || errors.As(err, &ne) && ne.Timeout() && time.Since(ss.idleSince()) < ps.idle {
			continue // data (counted), or a message written since the deadline was set
		}
		if errors.As(err, &ne) && ne.Timeout() {
			close(ss.dead)
			_ = ss.CloseWrite()
			_ = ss.SetReadDeadline(time.Now().Add(putProviderLimit))
			_, _ = ss.Read(buf[:]) // the peer's EOF or reset, or the limit
			_ = ss.Reset()
			ps.forget(p, st, ss)
			return
		}
		break
	}
	close(ss.dead)
	_ = ss.Reset()
	ps.forget(p, st, ss)
}

// close resets every stream and waits for their watchers.
func (ps *providerSender) close() {
	ps.mu.Lock()
	ps.closed = true
	clear(ps.streams)
	live := ps.live
	ps.live = map[*sendStream]struct{}{}
	ps.mu.Unlock()
	for ss := range live {
		_ = ss.Reset()
	}
	ps.readers.Wait()
}
