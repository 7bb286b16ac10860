package shard

import (
	"bufio"
	"context"
	"fmt"
	"time"

	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// FETCH: cidLen u8 ‖ CID. Answered BLOCK with the block's bytes, or ERROR
// not found. HAS has the same payload.

// CIDParts returns the payload of a FETCH or HAS.
func CIDParts(cid []byte) [][]byte { return [][]byte{{byte(len(cid))}, cid} }

// ParseCID decodes a FETCH or HAS payload.
func ParseCID(p []byte) ([]byte, error) {
	if len(p) < 2 || int(p[0]) != len(p)-1 {
		return nil, fmt.Errorf("%w: CID payload of %d bytes", ErrMalformed, len(p))
	}
	return p[1:], nil
}

// serveFetch answers a FETCH. The reply's bytes are held under the same
// budget as requests, charged to the peer that asked, until they are
// written: a peer that never reads its replies holds at most its share.
func (s *Server) serveFetch(ctx context.Context, st network.Stream, remote peer.ID, payload []byte, w *bufio.Writer) error {
	c, bad, err := parseRequestCID(payload, w)
	if err != nil || bad {
		return err
	}
	size, err := s.store.GetSize(ctx, c)
	if ipld.IsNotFound(err) {
		return writeErr(w, CodeNotFound, "")
	}
	if err != nil {
		return writeErr(w, CodeNotFound, "unreadable")
	}
	bctx, cancel := context.WithTimeout(ctx, streamTimeout)
	release, err := s.mem.acquire(bctx, remote, size)
	cancel()
	if err != nil {
		return writeErr(w, CodeInternal, "busy: too many requests in flight")
	}
	defer release()
	_ = st.SetWriteDeadline(time.Now().Add(streamTimeout)) // the wait is not writing time
	data, err := s.store.GetInto(ctx, c, buffers.get)
	if ipld.IsNotFound(err) {
		return writeErr(w, CodeNotFound, "")
	}
	if err != nil {
		return writeErr(w, CodeNotFound, "unreadable")
	}
	err = WriteFrame(w, TypeBlock, data)
	if err == nil {
		err = w.Flush() // the bytes are on their way before the budget is given back
	}
	buffers.put(data)
	return err
}

// parseRequestCID reads the CID of a FETCH or HAS. A payload of the wrong
// layout is answered ERROR malformed and ends the stream (err); a CID that
// does not parse, or is not umbra's form, is answered ERROR malformed and
// the stream goes on (bad).
func parseRequestCID(payload []byte, w *bufio.Writer) (c cid.Cid, bad bool, err error) {
	raw, err := ParseCID(payload)
	if err != nil {
		_ = writeErr(w, CodeMalformed, err.Error())
		return cid.Undef, true, err
	}
	c, msg := requestCID(raw)
	if msg != "" {
		return cid.Undef, true, writeErr(w, CodeMalformed, msg)
	}
	return c, false, nil
}

// Fetch asks p for a block of at most size bytes (ErrTooLarge for a larger
// answer, which is not read). The bytes are not verified here: the caller
// hashes them against id. They come from the package's buffer pool; give
// them back with Release when done.
func (c *Client) Fetch(ctx context.Context, p peer.ID, id cid.Cid, size int) ([]byte, error) {
	return c.FetchInto(ctx, p, id, size, nil)
}

// FetchInto is Fetch reading an answer of exactly len(into) bytes (the
// block's size, when the caller knows it) into into, and returning into,
// instead of a pool buffer: a reader's own buffer, where the block is used
// (no copy). into is written only while FetchInto runs, and whatever it
// holds afterwards is unchecked, like any Fetch answer; the pool never
// takes it. Other answers come from the pool as Fetch's do.
func (c *Client) FetchInto(ctx context.Context, p peer.ID, id cid.Cid, size int, into []byte) ([]byte, error) {
	f, err := c.roundTripInto(ctx, p, size, into, TypeFetch, CIDParts(id.Bytes())...)
	if err != nil {
		return nil, err
	}
	if f.Type != TypeBlock {
		ReleaseExcept(f.Payload, into)
		return nil, fmt.Errorf("%w: fetch answered 0x%02x", ErrMalformed, byte(f.Type))
	}
	return f.Payload, nil
}
