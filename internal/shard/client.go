package shard

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// maxIdle is how many idle streams the client keeps per peer.
const maxIdle = 8

// streamBuf is the size of a client stream's read and write buffers.
const streamBuf = 4 << 10

// Client sends shard-protocol requests, one in flight per stream, reusing
// streams per peer.
type Client struct {
	h     host.Host
	mu    sync.Mutex
	idle  map[peer.ID][]*clientStream
	total int // idle streams, all peers
}

type clientStream struct {
	s    network.Stream
	r    *bufio.Reader
	w    *bufio.Writer
	idle time.Time // when it went back to the pool
}

// maxIdleAge is how long a stream may wait in the pool to be reused: the
// server ends one that brings no request for idleTimeout, and a request
// written as it does would wait out its deadline (a payload larger than
// the muxer's window is never taken).
const maxIdleAge = time.Minute

// maxIdleTotal bounds the idle streams kept for all peers.
const maxIdleTotal = 512

// NewClient returns a client on h. Idle streams to a peer are closed when
// the peer disconnects: peer IDs are free, and streams to peers that went
// away must not pile up.
func NewClient(h host.Host) *Client {
	c := &Client{h: h, idle: map[peer.ID][]*clientStream{}}
	h.Network().Notify(&network.NotifyBundle{DisconnectedF: func(n network.Network, conn network.Conn) {
		if p := conn.RemotePeer(); n.Connectedness(p) != network.Connected {
			c.drop(p)
		}
	}})
	return c
}

// drop closes p's idle streams.
func (c *Client) drop(p peer.ID) {
	c.mu.Lock()
	l := c.idle[p]
	delete(c.idle, p)
	c.total -= len(l)
	c.mu.Unlock()
	for _, cs := range l {
		_ = cs.s.Reset()
	}
}

// take returns an idle stream to p (reused reports which) or, if there is
// none that is still open or fresh is set, a new one.
func (c *Client) take(ctx context.Context, p peer.ID, fresh bool) (cs *clientStream, reused bool, err error) {
	for !fresh {
		cs := c.pop(p)
		if cs == nil {
			break
		}
		if !cs.s.Conn().IsClosed() && time.Since(cs.idle) < maxIdleAge && !ended(cs) {
			return cs, true, nil
		}
		_ = cs.s.Reset()
	}
	s, err := c.h.NewStream(network.WithAllowLimitedConn(ctx, "shard"), p, Protocol)
	if err != nil {
		return nil, false, err
	}
	// Small buffers: they only join a frame's header to the start of its
	// payload; large payloads go to and from the stream directly.
	return &clientStream{s: s, r: bufio.NewReaderSize(s, streamBuf), w: bufio.NewWriterSize(s, streamBuf)}, false, nil
}

// pop takes p's most recently used idle stream from the pool, or nil.
func (c *Client) pop(p peer.ID) *clientStream {
	c.mu.Lock()
	defer c.mu.Unlock()
	l := c.idle[p]
	if len(l) == 0 {
		delete(c.idle, p)
		return nil
	}
	cs := l[len(l)-1]
	c.idle[p] = l[:len(l)-1]
	c.total--
	return cs
}

// ended reports whether the server ended idle stream cs (its close or
// reset has arrived), or sent on it unasked: a request written into it
// would get no answer. It does not wait: the read's deadline has passed.
func ended(cs *clientStream) bool {
	if cs.r.Buffered() > 0 {
		return true
	}
	_ = cs.s.SetReadDeadline(time.Now())
	_, err := cs.r.Peek(1)
	_ = cs.s.SetReadDeadline(time.Time{})
	var ne net.Error
	return !errors.As(err, &ne) || !ne.Timeout()
}

func (c *Client) give(p peer.ID, cs *clientStream) {
	cs.idle = time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.idle[p]) < maxIdle && c.total < maxIdleTotal && !cs.s.Conn().IsClosed() {
		c.idle[p] = append(c.idle[p], cs)
		c.total++
		return
	}
	_ = cs.s.Close()
}

// maxAnswer is the largest answer but a BLOCK: an ERROR's code and message.
const maxAnswer = 2 + maxErrorMsg

// roundTrip sends one request and reads its response frame, of at most
// limit bytes of payload (ErrTooLarge otherwise, unread: a peer cannot make
// this node hold more than the caller expects). A reused stream that turns
// out dead (the peer restarted, or ended an idle stream) is retried once on
// a new one.
func (c *Client) roundTrip(ctx context.Context, p peer.ID, limit int, t Type, parts ...[]byte) (Frame, error) {
	return c.roundTripInto(ctx, p, limit, nil, t, parts...)
}

// roundTripInto is roundTrip reading an answer of exactly len(into) bytes
// into into instead of a pool buffer (FetchInto).
func (c *Client) roundTripInto(ctx context.Context, p peer.ID, limit int, into []byte, t Type, parts ...[]byte) (Frame, error) {
	for attempt := 0; ; attempt++ {
		f, reused, err := c.roundTripOnce(ctx, p, limit, into, attempt > 0, t, parts...)
		var re *RemoteError
		if err != nil && reused && attempt == 0 && ctx.Err() == nil && !errors.As(err, &re) {
			continue
		}
		return f, err
	}
}

func (c *Client) roundTripOnce(ctx context.Context, p peer.ID, limit int, into []byte, fresh bool, t Type, parts ...[]byte) (Frame, bool, error) {
	cs, reused, err := c.take(ctx, p, fresh)
	if err != nil {
		return Frame{}, false, err
	}
	// A cancelled caller must not wait for the stream deadline.
	stop := context.AfterFunc(ctx, func() { _ = cs.s.Reset() })
	defer stop()
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(streamTimeout)
	}
	_ = cs.s.SetDeadline(dl)
	err = WriteFrame(cs.w, t, parts...)
	if err == nil {
		err = cs.w.Flush()
	}
	var f Frame
	if err == nil {
		f, err = ReadFrameFunc(cs.r, func(n int) ([]byte, error) {
			if n > max(limit, maxAnswer) {
				return nil, fmt.Errorf("%w: an answer of %d bytes where at most %d were expected", ErrTooLarge, n, max(limit, maxAnswer))
			}
			if n > 0 && n == len(into) {
				return into, nil
			}
			return buffers.get(n), nil
		})
	}
	if err != nil {
		ReleaseExcept(f.Payload, into)
		_ = cs.s.Reset()
		if ctx.Err() != nil {
			return Frame{}, reused, ctx.Err()
		}
		return Frame{}, reused, err
	}
	_ = cs.s.SetDeadline(time.Time{})
	// The answer is whole. A caller cancelled from here on must not reset
	// the stream once it is back in the pool (another request's by then):
	// if the reset has run or is running, the stream is dropped instead.
	keep := stop()
	give := func() {
		if keep {
			c.give(p, cs)
		} else {
			_ = cs.s.Reset()
		}
	}
	if f.Type == TypeError {
		re, err := ParseError(f.Payload)
		ReleaseExcept(f.Payload, into)
		if err != nil {
			_ = cs.s.Reset()
			return Frame{}, reused, err
		}
		if re.Code == CodeMalformed {
			_ = cs.s.Reset() // the peer closes it after this answer
		} else {
			give()
		}
		return Frame{}, reused, re
	}
	give()
	return f, reused, nil
}
