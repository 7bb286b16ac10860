package shard

import (
	"bufio"
	"context"
	"fmt"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
)

// HAS: cidLen u8 ‖ CID. Answered HAVE: one byte, 1 held, 0 not.

func (s *Server) serveHas(ctx context.Context, remote peer.ID, payload []byte, w *bufio.Writer) error {
	c, bad, err := parseRequestCID(payload, w)
	if err != nil || bad {
		return err
	}
	has, err := s.store.Has(ctx, c)
	if err != nil {
		s.log.Warn("has for a peer failed", "peer", remote.ShortString(), "err", err)
		return writeErr(w, CodeInternal, "lookup failed")
	}
	v := byte(0)
	if has {
		v = 1
	}
	return WriteFrame(w, TypeHave, []byte{v})
}

// Has asks p whether it holds a block.
func (c *Client) Has(ctx context.Context, p peer.ID, id cid.Cid) (bool, error) {
	f, err := c.roundTrip(ctx, p, 0, TypeHas, CIDParts(id.Bytes())...)
	if err != nil {
		return false, err
	}
	if f.Type != TypeHave || len(f.Payload) != 1 {
		return false, fmt.Errorf("%w: has answered 0x%02x", ErrMalformed, byte(f.Type))
	}
	return f.Payload[0] == 1, nil
}
