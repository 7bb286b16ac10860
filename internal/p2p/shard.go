package p2p

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/umbra-store/umbra/blockstore"
	"github.com/umbra-store/umbra/erasure"
	"github.com/umbra-store/umbra/internal/wire"
)

// ShardProtocol is the protocol ID of the shard protocol.
const ShardProtocol = protocol.ID("/umbra/shard/1.0.0")

// Stream timing.
const (
	// streamTimeout bounds one request on a stream when the caller's
	// context has no deadline, a request's payload once its header has
	// arrived, and the writing of one answer.
	streamTimeout = 60 * time.Second
	// idleTimeout ends a server stream that brings no request.
	idleTimeout = 10 * time.Minute
)

// maxStoreBlock is the largest block a STORE may carry: a shard (at most
// erasure.MaxShardSize) or a manifest node (at most format.MaxNodeBlock).
const maxStoreBlock = erasure.MaxShardSize

// replyBuf is the write buffer of a server stream: it joins an answer's
// header to the start of its payload; the rest of a large payload goes to
// the stream directly.
const replyBuf = 4 << 10

// Service answers the shard protocol from a block store.
type Service struct {
	h       host.Host
	store   *blockstore.Store
	log     *slog.Logger
	max     int64 // quota in bytes (blockstore.Charge per block); 0: none
	used    atomic.Int64
	accept  func(peer.ID) bool
	corrupt bool // fault injection: serve every block with one bit flipped
	stored  atomic.Pointer[func(cid.Cid)]
	// mem caps the request and reply payload bytes held by all shard
	// streams at once, and per peer: peers that open many streams and send
	// or read slowly make requests wait, not the daemon run out of memory.
	mem *budget
}

// ServiceOptions configure NewService.
type ServiceOptions struct {
	MaxBytes int64
	// Accept decides who may store here; nil accepts anyone.
	Accept func(peer.ID) bool
	// Stored is called after a block is stored for a peer (to announce it).
	Stored func(cid.Cid)
	// CorruptServedShards is a fault-injection switch for tests.
	CorruptServedShards bool
	Log                 *slog.Logger
}

// NewService registers the shard protocol handler on h.
func NewService(ctx context.Context, h host.Host, store *blockstore.Store, o ServiceOptions) (*Service, error) {
	st, err := store.Stats(ctx)
	if err != nil {
		return nil, err
	}
	s := &Service{h: h, store: store, log: o.Log, max: o.MaxBytes, accept: o.Accept, corrupt: o.CorruptServedShards,
		mem: newBudget(maxInflight, maxPeerInflight)}
	if o.Stored != nil {
		s.stored.Store(&o.Stored)
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.used.Store(st.Charged())
	h.SetStreamHandler(ShardProtocol, s.handle)
	return s, nil
}

// SetStored sets the function called after a block is stored for a peer.
// Call it before the host accepts streams.
func (s *Service) SetStored(f func(cid.Cid)) { s.stored.Store(&f) }

// Used returns what the blocks held count against the quota
// (blockstore.Charge each).
func (s *Service) Used() int64 { return s.used.Load() }

// errFull: a block does not fit in the quota.
var errFull = errors.New("p2p: storage quota reached")

// storeBlock writes b and reports whether it was new here. The store
// hashes the data against its CID before writing (nothing unverified is
// acknowledged, or ever served), and for a block it already holds it checks
// the stored copy and rewrites it only if broken (an index entry can reach
// disk before its pack bytes when the node crashed before a sync).
// INVARIANT: a new block's charge (its bytes and blockstore.BlockOverhead)
// is claimed from the quota before the write (and given back if it fails),
// so concurrent stores cannot together pass it; a block already held is not
// charged again.
func (s *Service) storeBlock(ctx context.Context, b blocks.Block) (bool, error) {
	held, err := s.store.Has(ctx, b.Cid())
	if err != nil {
		return false, err
	}
	n := blockstore.Charge(len(b.RawData()))
	if !held && !s.reserve(n) {
		return false, errFull
	}
	if err := s.store.PutManyDeferred(ctx, []blocks.Block{b}); err != nil {
		if !held {
			s.used.Add(-n)
		}
		return false, err
	}
	return !held, nil
}

// reserve claims n bytes of the quota; false when they do not fit.
func (s *Service) reserve(n int64) bool {
	for {
		cur := s.used.Load()
		if s.max > 0 && cur+n > s.max {
			return false
		}
		if s.used.CompareAndSwap(cur, cur+n) {
			return true
		}
	}
}

// handle serves one stream. An idle stream holds no buffer: requests are
// read from the stream itself (the muxer holds what has arrived, within the
// resource manager's limits) into a buffer taken from the budget and the
// pool once a request's header has arrived, and given back once it is
// answered.
func (s *Service) handle(st network.Stream) {
	defer st.Close()
	remote := st.Conn().RemotePeer()
	var w *bufio.Writer
	for {
		_ = st.SetReadDeadline(time.Now().Add(idleTimeout))
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
			return frames.get(n), nil
		}
		f, err := wire.ReadFrameFunc(st, get)
		if w == nil && (err == nil || !isGone(err)) {
			w = bufio.NewWriterSize(st, replyBuf)
		}
		if err == nil {
			_ = st.SetWriteDeadline(time.Now().Add(streamTimeout))
			err = s.serve(remote, f, w)
			frames.put(f.Payload)
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
		frames.put(f.Payload)
		release()
		switch {
		case errors.Is(err, errBusy):
			// The payload was not read: the stream cannot go on.
			_ = writeErr(w, wire.CodeInternal, "busy: too many requests in flight")
			_ = w.Flush()
		case !isGone(err):
			// Malformed or oversized: say so, then end the stream.
			// Close, not Reset: a reset may drop the ERROR on its way.
			_ = wire.WriteFrame(w, wire.TypeError, wire.ErrorParts(wire.CodeMalformed, err.Error())...)
			_ = w.Flush()
		}
		return
	}
}

// isGone reports errors that mean the peer went away or stalled, not that
// it sent a bad frame.
func isGone(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || isStreamClosed(err)
}

// isStreamClosed reports errors that mean the peer went away, not that it
// sent a bad frame.
func isStreamClosed(err error) bool {
	var ne interface{ Timeout() bool }
	return errors.As(err, &ne) || errors.Is(err, network.ErrReset) || errors.Is(err, os.ErrDeadlineExceeded)
}

func writeErr(w *bufio.Writer, code wire.Code, msg string) error {
	return wire.WriteFrame(w, wire.TypeError, wire.ErrorParts(code, msg)...)
}

// requestCID parses the CID of a request and checks it has umbra's form.
// The error is the message of an ERROR malformed; the stream goes on.
func requestCID(raw []byte) (cid.Cid, string) {
	c, err := cid.Cast(raw)
	if err != nil {
		return cid.Undef, "bad CID"
	}
	if blockstore.CheckCID(c) != nil {
		return cid.Undef, "unsupported CID: umbra stores CIDv1, raw, sha2-256 blocks only"
	}
	return c, ""
}

// serve answers one request. A returned error ends the stream.
func (s *Service) serve(remote peer.ID, f wire.Frame, w *bufio.Writer) error {
	ctx := context.Background()
	switch f.Type {
	case wire.TypeStore:
		req, err := wire.ParseStore(f.Payload)
		if err != nil {
			_ = writeErr(w, wire.CodeMalformed, err.Error())
			return err
		}
		c, bad := requestCID(req.CID)
		if bad != "" {
			return writeErr(w, wire.CodeMalformed, bad)
		}
		if len(req.Data) > maxStoreBlock {
			return writeErr(w, wire.CodeMalformed, fmt.Sprintf("block of %d bytes: the most a peer stores is %d", len(req.Data), maxStoreBlock))
		}
		if s.accept != nil && !s.accept(remote) {
			return writeErr(w, wire.CodeRefused, "this node does not store for you")
		}
		blk, err := blocks.NewBlockWithCid(req.Data, c)
		if err != nil {
			return writeErr(w, wire.CodeMalformed, "bad block")
		}
		added, err := s.storeBlock(ctx, blk)
		switch {
		case errors.Is(err, errFull):
			return writeErr(w, wire.CodeFull, fmt.Sprintf("quota of %d bytes reached", s.max))
		case errors.Is(err, blockstore.ErrHashMismatch):
			return writeErr(w, wire.CodeHash, "data does not match its CID")
		case err != nil:
			s.log.Warn("store for a peer failed", "peer", remote.ShortString(), "cid", blockstore.Short(c), "err", err)
			return writeErr(w, wire.CodeInternal, "store failed")
		case !added:
			return wire.WriteFrame(w, wire.TypeOK)
		}
		if f := s.stored.Load(); f != nil {
			(*f)(c)
		}
		return wire.WriteFrame(w, wire.TypeOK)
	case wire.TypeSync:
		// Store.Sync coalesces: a flood of SYNCs costs one disk sync per
		// batch of writes, not one each.
		if err := s.store.Sync(ctx); err != nil {
			s.log.Warn("sync for a peer failed", "peer", remote.ShortString(), "err", err)
			return writeErr(w, wire.CodeInternal, "sync failed")
		}
		return wire.WriteFrame(w, wire.TypeOK)
	case wire.TypeFetch, wire.TypeHas:
		raw, err := wire.ParseCID(f.Payload)
		if err != nil {
			_ = writeErr(w, wire.CodeMalformed, err.Error())
			return err
		}
		c, bad := requestCID(raw)
		if bad != "" {
			return writeErr(w, wire.CodeMalformed, bad)
		}
		if f.Type == wire.TypeHas {
			has, err := s.store.Has(ctx, c)
			if err != nil {
				s.log.Warn("has for a peer failed", "peer", remote.ShortString(), "err", err)
				return writeErr(w, wire.CodeInternal, "lookup failed")
			}
			v := byte(0)
			if has {
				v = 1
			}
			return wire.WriteFrame(w, wire.TypeHave, []byte{v})
		}
		return s.serveFetch(ctx, remote, c, w)
	}
	_ = writeErr(w, wire.CodeMalformed, fmt.Sprintf("unknown request type 0x%02x", byte(f.Type)))
	return fmt.Errorf("unknown request type 0x%02x", byte(f.Type))
}

// serveFetch answers a FETCH. The reply's bytes are held under the same
// budget as requests until they are written: a peer that never reads its
// replies holds at most its share.
func (s *Service) serveFetch(ctx context.Context, remote peer.ID, c cid.Cid, w *bufio.Writer) error {
	size, err := s.store.GetSize(ctx, c)
	if ipld.IsNotFound(err) {
		return writeErr(w, wire.CodeNotFound, "")
	}
	if err != nil {
		return writeErr(w, wire.CodeNotFound, "unreadable")
	}
	bctx, cancel := context.WithTimeout(ctx, streamTimeout)
	release, err := s.mem.acquire(bctx, remote, size)
	cancel()
	if err != nil {
		return writeErr(w, wire.CodeInternal, "busy: too many requests in flight")
	}
	defer release()
	data, err := s.store.GetInto(ctx, c, frames.get)
	if ipld.IsNotFound(err) {
		return writeErr(w, wire.CodeNotFound, "")
	}
	if err != nil {
		return writeErr(w, wire.CodeNotFound, "unreadable")
	}
	if s.corrupt && len(data) > 0 {
		data[len(data)/3] ^= 0x08
	}
	err = wire.WriteFrame(w, wire.TypeBlock, data)
	if err == nil {
		err = w.Flush() // the bytes are on their way before the budget is given back
	}
	frames.put(data)
	return err
}

// Client sends shard-protocol requests, reusing streams per peer.
type Client struct {
	h    host.Host
	mu   sync.Mutex
	idle map[peer.ID][]*clientStream
}

type clientStream struct {
	s network.Stream
	r *bufio.Reader
	w *bufio.Writer
}

// NewClient returns a client on h.
func NewClient(h host.Host) *Client { return &Client{h: h, idle: map[peer.ID][]*clientStream{}} }

// take returns an idle stream to p (reused reports which) or a new one.
func (c *Client) take(ctx context.Context, p peer.ID) (cs *clientStream, reused bool, err error) {
	c.mu.Lock()
	for l := c.idle[p]; len(l) > 0; l = c.idle[p] {
		cs := l[len(l)-1]
		c.idle[p] = l[:len(l)-1]
		if cs.s.Conn().IsClosed() {
			_ = cs.s.Reset()
			continue
		}
		c.mu.Unlock()
		return cs, true, nil
	}
	c.mu.Unlock()
	s, err := c.h.NewStream(network.WithAllowLimitedConn(ctx, "shard"), p, ShardProtocol)
	if err != nil {
		return nil, false, err
	}
	return &clientStream{s: s, r: bufio.NewReaderSize(s, 64<<10), w: bufio.NewWriterSize(s, 64<<10)}, false, nil
}

func (c *Client) give(p peer.ID, cs *clientStream) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.idle[p]) < 8 {
		c.idle[p] = append(c.idle[p], cs)
		return
	}
	_ = cs.s.Close()
}

// roundTrip sends one request and reads its response frame. A reused
// stream that turns out dead (the peer restarted, or ended an idle stream) is
// retried once on a fresh one.
func (c *Client) roundTrip(ctx context.Context, p peer.ID, t wire.Type, parts ...[]byte) (wire.Frame, error) {
	for attempt := 0; ; attempt++ {
		f, reused, err := c.roundTripOnce(ctx, p, t, parts...)
		var re *wire.RemoteError
		if err != nil && reused && attempt == 0 && ctx.Err() == nil && !errors.As(err, &re) {
			continue
		}
		return f, err
	}
}

func (c *Client) roundTripOnce(ctx context.Context, p peer.ID, t wire.Type, parts ...[]byte) (wire.Frame, bool, error) {
	cs, reused, err := c.take(ctx, p)
	if err != nil {
		return wire.Frame{}, false, err
	}
	// A cancelled caller must not wait for the stream deadline.
	stop := context.AfterFunc(ctx, func() { _ = cs.s.Reset() })
	defer stop()
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(streamTimeout)
	}
	_ = cs.s.SetDeadline(dl)
	err = wire.WriteFrame(cs.w, t, parts...)
	if err == nil {
		err = cs.w.Flush()
	}
	var f wire.Frame
	if err == nil {
		f, err = wire.ReadFrameFunc(cs.r, frames.read)
	}
	if err != nil {
		_ = cs.s.Reset()
		if ctx.Err() != nil {
			return f, reused, ctx.Err()
		}
		return f, reused, err
	}
	_ = cs.s.SetDeadline(time.Time{})
	if f.Type == wire.TypeError {
		re, err := wire.ParseError(f.Payload)
		if err != nil {
			_ = cs.s.Reset()
			return f, reused, err
		}
		if re.Code == wire.CodeMalformed {
			_ = cs.s.Reset() // the peer closes it after this answer
		} else {
			c.give(p, cs)
		}
		return f, reused, re
	}
	c.give(p, cs)
	return f, reused, nil
}

// Store pushes one block to p (durable after the next Sync to p).
func (c *Client) Store(ctx context.Context, p peer.ID, b blocks.Block, lease uint64) error {
	f, err := c.roundTrip(ctx, p, wire.TypeStore, wire.StoreParts(lease, b.Cid().Bytes(), b.RawData())...)
	if err != nil {
		return err
	}
	if f.Type != wire.TypeOK {
		return fmt.Errorf("%w: store answered 0x%02x", wire.ErrMalformed, byte(f.Type))
	}
	return nil
}

// Sync asks p to make every block stored before it durable.
func (c *Client) Sync(ctx context.Context, p peer.ID) error {
	f, err := c.roundTrip(ctx, p, wire.TypeSync)
	if err != nil {
		return err
	}
	if f.Type != wire.TypeOK {
		return fmt.Errorf("%w: sync answered 0x%02x", wire.ErrMalformed, byte(f.Type))
	}
	return nil
}

// Fetch asks p for a block. The bytes are not verified here.
func (c *Client) Fetch(ctx context.Context, p peer.ID, id cid.Cid) ([]byte, error) {
	f, err := c.roundTrip(ctx, p, wire.TypeFetch, wire.CIDParts(id.Bytes())...)
	if err != nil {
		return nil, err
	}
	if f.Type != wire.TypeBlock {
		return nil, fmt.Errorf("%w: fetch answered 0x%02x", wire.ErrMalformed, byte(f.Type))
	}
	return f.Payload, nil // the caller may give it back with Net.Release
}

// Has asks p whether it holds a block.
func (c *Client) Has(ctx context.Context, p peer.ID, id cid.Cid) (bool, error) {
	f, err := c.roundTrip(ctx, p, wire.TypeHas, wire.CIDParts(id.Bytes())...)
	if err != nil {
		return false, err
	}
	if f.Type != wire.TypeHave || len(f.Payload) != 1 {
		return false, fmt.Errorf("%w: has answered 0x%02x", wire.ErrMalformed, byte(f.Type))
	}
	return f.Payload[0] == 1, nil
}
