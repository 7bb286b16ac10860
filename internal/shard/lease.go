package shard

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/umbra-store/umbra/blockstore"
)

// RENEW: expiry u64 ‖ renew secret (32) ‖ cidLen u8 ‖ CID. The lease whose
// hash is the secret's SHA-256 runs until expiry if that is later; a block
// held without that lease gets it (a second storer, or someone keeping the
// file alive with a verify capability). OK, or ERROR not found.
//
// CANCEL: renew secret (32) ‖ cidLen u8 ‖ CID. The lease ends now; the
// block goes at the next GC past the grace period unless another lease
// holds it. OK, or ERROR not found.

// LeaseRequest is a decoded RENEW or CANCEL payload.
type LeaseRequest struct {
	Expiry uint64 // RENEW only
	Secret [32]byte
	CID    []byte
}

// LeaseParts returns the payload of a RENEW (t TypeRenew) or a CANCEL.
func LeaseParts(t Type, expiry uint64, secret [32]byte, c []byte) []byte {
	var p []byte
	if t == TypeRenew {
		p = binary.BigEndian.AppendUint64(p, expiry)
	}
	p = append(p, secret[:]...)
	p = append(p, byte(len(c)))
	return append(p, c...)
}

// ParseLease decodes a RENEW (t TypeRenew) or CANCEL payload.
func ParseLease(t Type, p []byte) (LeaseRequest, error) {
	var r LeaseRequest
	if t == TypeRenew {
		if len(p) < 8 {
			return r, fmt.Errorf("%w: renew of %d bytes", ErrMalformed, len(p))
		}
		r.Expiry, p = binary.BigEndian.Uint64(p), p[8:]
	}
	if len(p) < 33 || int(p[32]) != len(p)-33 || p[32] == 0 {
		return r, fmt.Errorf("%w: lease request of %d bytes", ErrMalformed, len(p))
	}
	copy(r.Secret[:], p)
	r.CID = p[33:]
	return r, nil
}

func (s *Server) serveLease(ctx context.Context, remote peer.ID, f Frame, w *bufio.Writer) error {
	req, err := ParseLease(f.Type, f.Payload)
	if err != nil {
		_ = writeErr(w, CodeMalformed, err.Error())
		return err
	}
	c, bad := requestCID(req.CID)
	if bad != "" {
		return writeErr(w, CodeMalformed, bad)
	}
	hash := sha256.Sum256(req.Secret[:])
	if f.Type == TypeRenew {
		if s.accept != nil && !s.accept(remote) {
			return writeErr(w, CodeRefused, "this node does not store for you")
		}
		err = s.store.AddLease(ctx, c, blockstore.Lease{Expiry: req.Expiry, Hash: hash}, blockstore.ByRenew)
	} else {
		err = s.store.CancelLease(ctx, c, hash)
	}
	if code, msg, ok := leaseRefusal(err); ok {
		return writeErr(w, code, msg)
	}
	switch {
	case ipld.IsNotFound(err):
		return writeErr(w, CodeNotFound, "no such block or lease")
	case err != nil:
		s.log.Warn("lease change failed", "peer", remote.ShortString(), "cid", blockstore.Short(c), "err", err)
		return writeErr(w, CodeInternal, "lease change failed")
	}
	return WriteFrame(w, TypeOK)
}

// leaseRefusal is the answer to a lease the store refused; ok false: err
// is no such refusal.
func leaseRefusal(err error) (code Code, msg string, ok bool) {
	switch {
	case errors.Is(err, blockstore.ErrLeaseExpired):
		return CodeMalformed, "the lease has already expired", true
	case errors.Is(err, blockstore.ErrTooManyLeases):
		return CodeFull, "the block has as many leases as it may", true
	}
	return 0, "", false
}

// Renew runs the lease of secret on block c held by p until expiry, or
// adds it; durable after the next Sync to p.
func (c *Client) Renew(ctx context.Context, p peer.ID, b cid.Cid, secret [32]byte, expiry uint64) error {
	return c.leaseRequest(ctx, p, TypeRenew, LeaseParts(TypeRenew, expiry, secret, b.Bytes()))
}

// Cancel ends the lease of secret on block c held by p now.
func (c *Client) Cancel(ctx context.Context, p peer.ID, b cid.Cid, secret [32]byte) error {
	return c.leaseRequest(ctx, p, TypeCancel, LeaseParts(TypeCancel, 0, secret, b.Bytes()))
}

func (c *Client) leaseRequest(ctx context.Context, p peer.ID, t Type, payload []byte) error {
	f, err := c.roundTrip(ctx, p, 0, t, payload)
	if err != nil {
		return err
	}
	if f.Type != TypeOK {
		return fmt.Errorf("%w: lease request answered 0x%02x", ErrMalformed, byte(f.Type))
	}
	return nil
}
