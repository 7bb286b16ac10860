package shard

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/libp2p/go-libp2p/core/protocol"
)

// Protocol is the shard protocol's libp2p protocol ID.
const Protocol = protocol.ID("/umbra/shard/1.0.0")

// Version is the frame version this package writes and reads.
const Version = 0x01

// MaxPayload caps a frame's payload: one shard (≤ 2 MiB, erasure) or one
// manifest node (< 1 MiB) plus its CID and lease, with room to spare.
const MaxPayload = 4<<20 + 1024 // bytes

const headerLen = 6

// Type is a frame type. Values are part of the protocol: retired values are
// never reused.
type Type byte

// Request types.
const (
	// 0x01: STORE without a renew hash, retired.
	TypeFetch Type = 0x02 // cidLen u8 ‖ cid
	TypeHas   Type = 0x03 // cidLen u8 ‖ cid
	TypeSync  Type = 0x04 // empty: make every store before it durable
	// TypeRecordPut offers a folder record to keep: the record (321 bytes).
	TypeRecordPut Type = 0x05
	// TypeRecordGet asks for the record kept for a folder: its id (32).
	TypeRecordGet Type = 0x06
	// TypeStore stores a block under a lease: expiry u64 ‖ renew hash (32)
	// ‖ cidLen u8 ‖ cid ‖ data.
	TypeStore Type = 0x07
	// TypeRenew runs a lease until a later expiry, or adds it: expiry u64
	// ‖ renew secret (32) ‖ cidLen u8 ‖ cid.
	TypeRenew Type = 0x08
	// TypeCancel ends a lease now: renew secret (32) ‖ cidLen u8 ‖ cid.
	TypeCancel Type = 0x09
)

// Response types.
const (
	TypeOK    Type = 0x81 // empty
	TypeBlock Type = 0x82 // block bytes
	TypeHave  Type = 0x83 // u8: 0 or 1
	// TypeRecord answers RECORD_PUT and RECORD_GET: status u8 ‖ record.
	TypeRecord Type = 0x84
	TypeError  Type = 0xE0 // code u16 ‖ message (UTF-8, ≤ 1 KiB)
)

// Errors returned by ReadFrame and the payload parsers.
var (
	ErrVersion   = errors.New("shard: unsupported frame version")
	ErrTooLarge  = errors.New("shard: frame larger than the cap")
	ErrMalformed = errors.New("shard: malformed frame")
)

// Frame is one decoded frame. Payload aliases the buffer given to ReadFrame.
type Frame struct {
	Type    Type
	Payload []byte
}

// WriteFrame writes one frame.
func WriteFrame(w io.Writer, t Type, parts ...[]byte) error {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	if n > MaxPayload {
		return fmt.Errorf("%w: %d bytes", ErrTooLarge, n)
	}
	var hdr [headerLen]byte
	hdr[0], hdr[1] = Version, byte(t)
	binary.BigEndian.PutUint32(hdr[2:], uint32(n))
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	for _, p := range parts {
		if _, err := w.Write(p); err != nil {
			return err
		}
	}
	return nil
}

// ReadFrame reads one frame into buf (grown if needed, never beyond
// MaxPayload) and returns it with the buffer for reuse.
func ReadFrame(r io.Reader, buf []byte) (Frame, []byte, error) {
	f, err := ReadFrameFunc(r, func(n int) ([]byte, error) {
		if cap(buf) < n {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		return buf, nil
	})
	return f, buf, err
}

// ReadFrameFunc reads one frame into the buffer get returns for its payload
// length (at least n bytes long; a free list's, say). get is called only for
// a well-formed header; its error (no memory to spare, say) is returned.
func ReadFrameFunc(r io.Reader, get func(n int) ([]byte, error)) (Frame, error) {
	var hdr [headerLen]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return Frame{}, err
	}
	if hdr[0] != Version {
		return Frame{}, fmt.Errorf("%w %d", ErrVersion, hdr[0])
	}
	n := binary.BigEndian.Uint32(hdr[2:])
	if n > MaxPayload {
		return Frame{}, fmt.Errorf("%w: %d bytes", ErrTooLarge, n)
	}
	buf, err := get(int(n))
	if err != nil {
		return Frame{}, err
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return Frame{Payload: buf}, err
	}
	return Frame{Type: Type(hdr[1]), Payload: buf}, nil
}
