package shard

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/umbra-store/umbra/blockstore"
)

// Stream timing.
const (
	// streamTimeout bounds one request on a stream when the caller's
	// context has no deadline, a request's payload once its header has
	// arrived, and the writing of one answer.
	streamTimeout = 60 * time.Second
	// idleTimeout ends a server stream that brings no request.
	idleTimeout = 10 * time.Minute
)

// Stream limits the host should apply to this protocol (p2phost's
// ProtocolLimit): umbra's client uses a few streams per peer and keeps at
// most maxIdle idle.
const (
	MaxStreamsPerPeer = 64   // inbound, from one peer at once
	MaxStreams        = 1024 // inbound, from all peers at once
)

// replyBuf is the write buffer of a server stream: it joins an answer's
// header to the start of its payload; the rest of a large payload goes to
// the stream directly.
const replyBuf = 4 << 10

// Store is what the server serves from and writes to: the node's block
// store, which checks CIDs and hashes and enforces the quota.
type Store interface {
	Has(ctx context.Context, c cid.Cid) (bool, error)
	GetSize(ctx context.Context, c cid.Cid) (int, error)
	GetInto(ctx context.Context, c cid.Cid, get func(n int) []byte) ([]byte, error)
	PutManyDeferred(ctx context.Context, bs []blocks.Block) error
	Sync(ctx context.Context) error
	AddLease(ctx context.Context, c cid.Cid, l blockstore.Lease, by blockstore.LeaseBy) error
	PutLeased(ctx context.Context, bs []blocks.Block, ls []blockstore.Lease, by blockstore.LeaseBy) error
	CancelLease(ctx context.Context, c cid.Cid, hash [32]byte) error
}

var _ Store = (*blockstore.Store)(nil)

// ServerOptions configure NewServer.
type ServerOptions struct {
	// Accept decides who may store here; nil accepts anyone.
	Accept func(peer.ID) bool
	// Stored is called after a block new to this node is stored for a
	// peer (the DHT announces it); nil: nothing.
	Stored func(from peer.ID, c cid.Cid)
	// Records keeps folder records for peers; nil: none kept.
	Records Records
	Log     *slog.Logger
}

// Server answers the shard protocol from a Store.
type Server struct {
	store   Store
	log     *slog.Logger
	accept  func(peer.ID) bool
	stored  func(peer.ID, cid.Cid)
	records Records
	// mem caps the request and reply payload bytes held by all streams at
	// once, and per peer: peers that open many streams and send or read
	// slowly make requests wait, not the node run out of memory.
	mem  *budget
	idle time.Duration // idleTimeout (tests shorten it)
}

// NewServer registers the shard protocol's handler on h.
func NewServer(h host.Host, store Store, o ServerOptions) *Server {
	s := &Server{store: store, log: o.Log, accept: o.Accept, stored: o.Stored, records: o.Records,
		mem: newBudget(maxInflight, maxPeerInflight), idle: idleTimeout}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	h.SetStreamHandler(Protocol, s.handle)
	return s
}

// handle serves one stream. An idle stream holds no buffer: requests are
// read from the stream itself (the muxer holds what has arrived, within the
// resource manager's limits) into a buffer taken from the budget and the
// pool once a request's header has arrived, and given back once it is
// answered.
func (s *Server) handle(st network.Stream) {
	defer st.Close()
	remote := st.Conn().RemotePeer()
	var w *bufio.Writer
	for {
		_ = st.SetReadDeadline(time.Now().Add(s.idle))
		release := func() {}
		get := func(n int) ([]byte, error) {
			// The header is in: its payload must follow promptly, and
			// waits for its share of the budget before it is read.
			_ = st.SetReadDeadline(time.Now().Add(streamTimeout))
			ctx, cancel := context.WithTimeout(context.Background(), streamTimeout)
			defer cancel()
			r, err := s.mem.acquire(ctx, remote, n)
			if err != nil {
				return nil, err
			}
			release = r
			// The time the request waited for room is not taken from
			// the time its payload has to arrive.
			_ = st.SetReadDeadline(time.Now().Add(streamTimeout))
			return buffers.get(n), nil
		}
		f, err := ReadFrameFunc(st, get)
		if w == nil && (err == nil || !isGone(err)) {
			w = bufio.NewWriterSize(st, replyBuf)
		}
		if err == nil {
			_ = st.SetWriteDeadline(time.Now().Add(streamTimeout))
			err = s.serve(st, remote, f, w)
			buffers.put(f.Payload)
			release()
			if err != nil {
				// serve wrote an ERROR frame before failing: deliver it
				// before ending the stream.
				_ = w.Flush()
				s.log.Debug("shard stream ended", "peer", remote.ShortString(), "err", err)
				return // deferred Close ends the stream after the ERROR
			}
			if err := w.Flush(); err != nil {
				_ = st.Reset()
				return
			}
			continue
		}
		buffers.put(f.Payload)
		release()
		switch {
		case errors.Is(err, errBusy):
			// The payload was not read: the stream cannot go on.
			_ = writeErr(w, CodeInternal, "busy: too many requests in flight")
			_ = w.Flush()
		case !isGone(err):
			// Malformed or oversized: say so, then end the stream.
			// Close, not Reset: a reset may drop the ERROR on its way.
			_ = writeErr(w, CodeMalformed, err.Error())
			_ = w.Flush()
		}
		return
	}
}

// isGone reports errors that mean the peer went away or stalled, not that
// it sent a bad frame.
func isGone(err error) bool {
	var ne interface{ Timeout() bool }
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &ne) ||
		errors.Is(err, network.ErrReset) || errors.Is(err, os.ErrDeadlineExceeded)
}

// requestCID parses the CID of a request and checks it has umbra's form.
// The error is the message of an ERROR malformed; the stream goes on.
func requestCID(raw []byte) (cid.Cid, string) {
	c, err := cid.Cast(raw)
	if err != nil {
		return cid.Undef, "bad CID"
	}
	if blockstore.CheckCID(c) != nil {
		return cid.Undef, "unsupported CID: umbra stores CIDv1, raw, 32-byte sha2-256 or blake3 blocks only"
	}
	return c, ""
}

// serve answers one request. A returned error ends the stream.
func (s *Server) serve(st network.Stream, remote peer.ID, f Frame, w *bufio.Writer) error {
	ctx := context.Background()
	switch f.Type {
	case TypeStore:
		return s.serveStore(ctx, remote, f.Payload, w)
	case TypeSync:
		return s.serveSync(ctx, remote, w)
	case TypeFetch:
		return s.serveFetch(ctx, st, remote, f.Payload, w)
	case TypeHas:
		return s.serveHas(ctx, remote, f.Payload, w)
	case TypeRecordPut:
		return s.serveRecordPut(ctx, remote, f.Payload, w)
	case TypeRecordGet:
		return s.serveRecordGet(ctx, remote, f.Payload, w)
	case TypeRenew, TypeCancel:
		return s.serveLease(ctx, remote, f, w)
	}
	_ = writeErr(w, CodeMalformed, fmt.Sprintf("unknown request type 0x%02x", byte(f.Type)))
	return fmt.Errorf("unknown request type 0x%02x", byte(f.Type))
}
