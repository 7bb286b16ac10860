package shard

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	blocks "github.com/ipfs/go-block-format"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/umbra-store/umbra/blockstore"
	"github.com/umbra-store/umbra/erasure"
)

// STORE: expiry u64 ‖ renew hash (32) ‖ cidLen u8 ‖ CID ‖ block data.
// Answered OK once the block is verified against its CID and written with
// the lease (durable after the next SYNC), or ERROR.

// maxStoreBlock is the largest block a STORE may carry: a shard (at most
// erasure.MaxShardSize) or a manifest node (at most format.MaxNodeBlock).
const maxStoreBlock = erasure.MaxShardSize

// Lease is what a storer asks a block be kept for: until Expiry (unix
// seconds; 0: as long as the peer allows, blockstore.MaxLeaseTerm), under
// the SHA-256 of a renew secret only the storer knows.
type Lease = blockstore.Lease

// StoreRequest is a decoded STORE payload.
type StoreRequest struct {
	Lease Lease
	CID   []byte
	Data  []byte
}

const storeHead = 8 + 32 + 1

// StoreParts returns the payload parts of a STORE.
func StoreParts(l Lease, cid, data []byte) [][]byte {
	var h [storeHead]byte
	binary.BigEndian.PutUint64(h[:8], l.Expiry)
	copy(h[8:40], l.Hash[:])
	h[40] = byte(len(cid))
	return [][]byte{h[:], cid, data}
}

// ParseStore decodes a STORE payload.
func ParseStore(p []byte) (StoreRequest, error) {
	if len(p) < storeHead {
		return StoreRequest{}, fmt.Errorf("%w: store of %d bytes", ErrMalformed, len(p))
	}
	cl := int(p[40])
	if cl == 0 || len(p) < storeHead+cl {
		return StoreRequest{}, fmt.Errorf("%w: store CID length %d", ErrMalformed, cl)
	}
	var r StoreRequest
	r.Lease.Expiry = binary.BigEndian.Uint64(p)
	copy(r.Lease.Hash[:], p[8:40])
	r.CID, r.Data = p[storeHead:storeHead+cl], p[storeHead+cl:]
	return r, nil
}

// serveStore answers a STORE. The store hashes the data against its CID
// before writing it, so nothing unverified is acknowledged or ever served;
// it charges a new block to its quota before the write.
func (s *Server) serveStore(ctx context.Context, remote peer.ID, payload []byte, w *bufio.Writer) error {
	req, err := ParseStore(payload)
	if err != nil {
		_ = writeErr(w, CodeMalformed, err.Error())
		return err
	}
	c, bad := requestCID(req.CID)
	if bad != "" {
		return writeErr(w, CodeMalformed, bad)
	}
	if len(req.Data) > maxStoreBlock {
		return writeErr(w, CodeMalformed, fmt.Sprintf("block of %d bytes: the most a peer stores is %d", len(req.Data), maxStoreBlock))
	}
	if s.accept != nil && !s.accept(remote) {
		return writeErr(w, CodeRefused, "this node does not store for you")
	}
	blk, err := blocks.NewBlockWithCid(req.Data, c)
	if err != nil {
		return writeErr(w, CodeMalformed, "bad block")
	}
	held, err := s.store.Has(ctx, c)
	if err == nil {
		// The block and its lease in one write: a crash keeps both or
		// neither.
		err = s.store.PutLeased(ctx, []blocks.Block{blk}, []blockstore.Lease{req.Lease}, blockstore.ByStore)
	}
	if code, msg, ok := leaseRefusal(err); ok {
		return writeErr(w, code, msg)
	}
	switch {
	case errors.Is(err, blockstore.ErrFull):
		return writeErr(w, CodeFull, "storage quota reached")
	case errors.Is(err, blockstore.ErrHashMismatch):
		return writeErr(w, CodeHash, "data does not match its CID")
	case err != nil:
		s.log.Warn("store for a peer failed", "peer", remote.ShortString(), "cid", blockstore.Short(c), "err", err)
		return writeErr(w, CodeInternal, "store failed")
	}
	if !held && s.stored != nil {
		s.stored(remote, c)
	}
	return WriteFrame(w, TypeOK)
}

// Store pushes one block to p (durable after the next Sync to p).
func (c *Client) Store(ctx context.Context, p peer.ID, b blocks.Block, lease Lease) error {
	f, err := c.roundTrip(ctx, p, 0, TypeStore, StoreParts(lease, b.Cid().Bytes(), b.RawData())...)
	if err != nil {
		return err
	}
	if f.Type != TypeOK {
		return fmt.Errorf("%w: store answered 0x%02x", ErrMalformed, byte(f.Type))
	}
	return nil
}
