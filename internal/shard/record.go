package shard

import (
	"bufio"
	"context"
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/umbra-store/umbra/internal/kind"
)

// RECORD_PUT: a folder record. RECORD_GET: a folder id (32 bytes). Both
// are answered RECORD: status u8 ‖ record, or ERROR (CodeInvalid for a
// record that does not validate, CodeRefused for a peer not accepted).
//
// RECORD statuses.
const (
	RecordKept  = 0x00 // the record that was offered (PUT) or is kept (GET) follows
	RecordNewer = 0x01 // PUT: a newer record is kept, and follows
	RecordNone  = 0x02 // GET: none kept; nothing follows
)

// maxRecord bounds a folder record on the wire (format.RecordSize is 321).
const maxRecord = 1024

// Records keeps folder records (the DHT's keeper). KeepFolderFrom returns
// the record kept afterwards, and whether it is the one offered; an invalid
// record is an error of kind Corrupt, no room for a new folder (the node's,
// or the peer's share of it) of kind Full.
type Records interface {
	KeepFolderFrom(ctx context.Context, from peer.ID, raw []byte) (kept []byte, accepted bool, err error)
	KeptFolder(ctx context.Context, id [32]byte) ([]byte, error)
}

func (s *Server) serveRecordPut(ctx context.Context, remote peer.ID, payload []byte, w *bufio.Writer) error {
	switch {
	case s.records == nil:
		return writeErr(w, CodeRefused, "this node keeps no folder records")
	case len(payload) > maxRecord:
		return writeErr(w, CodeInvalid, "record too large")
	case s.accept != nil && !s.accept(remote):
		return writeErr(w, CodeRefused, "this node does not store for you")
	}
	kept, accepted, err := s.records.KeepFolderFrom(ctx, remote, payload)
	if err != nil {
		switch kind.Of(err) {
		case kind.Corrupt:
			return writeErr(w, CodeInvalid, err.Error())
		case kind.Full:
			return writeErr(w, CodeFull, "record space full")
		}
		s.log.Warn("folder record for a peer failed", "peer", remote.ShortString(), "err", err)
		return writeErr(w, CodeInternal, "record store failed")
	}
	st := byte(RecordKept)
	if !accepted {
		st = RecordNewer
	}
	return WriteFrame(w, TypeRecord, []byte{st}, kept)
}

func (s *Server) serveRecordGet(ctx context.Context, remote peer.ID, payload []byte, w *bufio.Writer) error {
	if len(payload) != 32 {
		return writeErr(w, CodeInvalid, "a folder id is 32 bytes")
	}
	if s.records == nil {
		return WriteFrame(w, TypeRecord, []byte{RecordNone})
	}
	raw, err := s.records.KeptFolder(ctx, [32]byte(payload))
	if err != nil {
		s.log.Warn("folder record lookup for a peer failed", "peer", remote.ShortString(), "err", err)
		return writeErr(w, CodeInternal, "lookup failed")
	}
	if raw == nil {
		return WriteFrame(w, TypeRecord, []byte{RecordNone})
	}
	return WriteFrame(w, TypeRecord, []byte{RecordKept}, raw)
}

// PutRecord offers a folder record to p. accepted is false when p keeps a
// newer one, which it returns. The caller validates what comes back.
func (c *Client) PutRecord(ctx context.Context, p peer.ID, raw []byte) (kept []byte, accepted bool, err error) {
	st, rec, err := c.record(ctx, p, TypeRecordPut, raw)
	if err != nil {
		return nil, false, err
	}
	if st != RecordKept && st != RecordNewer || len(rec) == 0 {
		return nil, false, fmt.Errorf("%w: record put answered status %d", ErrMalformed, st)
	}
	return rec, st == RecordKept, nil
}

// GetRecord asks p for the record it keeps for folder id (nil: none). The
// caller validates it.
func (c *Client) GetRecord(ctx context.Context, p peer.ID, id [32]byte) ([]byte, error) {
	st, rec, err := c.record(ctx, p, TypeRecordGet, id[:])
	if err != nil {
		return nil, err
	}
	switch {
	case st == RecordNone && len(rec) == 0:
		return nil, nil
	case st == RecordKept && len(rec) > 0:
		return rec, nil
	}
	return nil, fmt.Errorf("%w: record get answered status %d", ErrMalformed, st)
}

func (c *Client) record(ctx context.Context, p peer.ID, t Type, payload []byte) (byte, []byte, error) {
	f, err := c.roundTrip(ctx, p, 1+maxRecord, t, payload)
	if err != nil {
		return 0, nil, err
	}
	defer Release(f.Payload)
	if f.Type != TypeRecord || len(f.Payload) < 1 {
		return 0, nil, fmt.Errorf("%w: record request answered 0x%02x", ErrMalformed, byte(f.Type))
	}
	var rec []byte
	if len(f.Payload) > 1 {
		rec = append([]byte(nil), f.Payload[1:]...)
	}
	return f.Payload[0], rec, nil
}
