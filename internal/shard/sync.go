package shard

import (
	"bufio"
	"context"
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"
)

// SYNC: empty. Answered OK once every STORE this node acknowledged before
// it, on any stream, is durable.

func (s *Server) serveSync(ctx context.Context, remote peer.ID, w *bufio.Writer) error {
	// The store's Sync coalesces: a flood of SYNCs costs one disk sync per
	// batch of writes, not one each.
	if err := s.store.Sync(ctx); err != nil {
		s.log.Warn("sync for a peer failed", "peer", remote.ShortString(), "err", err)
		return writeErr(w, CodeInternal, "sync failed")
	}
	return WriteFrame(w, TypeOK)
}

// Sync asks p to make every block stored before it durable.
func (c *Client) Sync(ctx context.Context, p peer.ID) error {
	f, err := c.roundTrip(ctx, p, 0, TypeSync)
	if err != nil {
		return err
	}
	if f.Type != TypeOK {
		return fmt.Errorf("%w: sync answered 0x%02x", ErrMalformed, byte(f.Type))
	}
	return nil
}
