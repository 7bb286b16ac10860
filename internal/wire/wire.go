// Package wire encodes the frames of umbra's shard protocol
// (/umbra/shard/1.0.0), specified in docs/protocol.md.
//
// Every frame:
//
//	+---------+------+------------+-----------------+
//	| version | type | length u32 | payload         |
//	| 0x01    | u8   | big endian | length bytes    |
//	+---------+------+------------+-----------------+
//
// The length is capped at MaxPayload; a decoder refuses a larger frame
// before reading its payload, so a peer cannot make another allocate more
// than one shard's worth of memory per stream. Requests and responses share
// the header; responses come back in request order.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/umbra-store/umbra/internal/printable"
)

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
	TypeStore Type = 0x01 // lease u64 ‖ cidLen u8 ‖ cid ‖ data
	TypeFetch Type = 0x02 // cidLen u8 ‖ cid
	TypeHas   Type = 0x03 // cidLen u8 ‖ cid
	TypeSync  Type = 0x04 // empty: make every store before it durable
)

// Response types.
const (
	TypeOK    Type = 0x81 // empty
	TypeBlock Type = 0x82 // block bytes
	TypeHave  Type = 0x83 // u8: 0 or 1
	TypeError Type = 0xE0 // code u16 ‖ message (UTF-8, ≤ 1 KiB)
)

// Code is an error code in a TypeError frame.
type Code uint16

// Error codes. Values are part of the protocol.
const (
	CodeNotFound  Code = 1 // no such block
	CodeHash      Code = 2 // data does not match its CID
	CodeFull      Code = 3 // storage quota reached
	CodeRefused   Code = 4 // this peer does not store for you
	CodeMalformed Code = 5 // bad frame; the stream is closed after it
	CodeInternal  Code = 6 // the receiver failed (disk error …)
)

var codeNames = map[Code]string{CodeNotFound: "not found", CodeHash: "hash mismatch",
	CodeFull: "storage full", CodeRefused: "refused", CodeMalformed: "malformed frame", CodeInternal: "internal error"}

func (c Code) String() string {
	if n, ok := codeNames[c]; ok {
		return n
	}
	return fmt.Sprintf("code %d", uint16(c))
}

// Errors returned by ReadFrame and the payload parsers.
var (
	ErrVersion   = errors.New("wire: unsupported frame version")
	ErrTooLarge  = errors.New("wire: frame larger than the cap")
	ErrMalformed = errors.New("wire: malformed frame")
)

// RemoteError is a TypeError frame received from a peer.
type RemoteError struct {
	Code Code
	Msg  string
}

func (e *RemoteError) Error() string {
	if e.Msg == "" {
		return "peer: " + e.Code.String()
	}
	return "peer: " + e.Code.String() + ": " + e.Msg
}

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

// Store is a decoded TypeStore payload.
type Store struct {
	Lease uint64 // unix seconds; 0: no expiry
	CID   []byte
	Data  []byte
}

// StoreParts returns the payload parts of a store request.
func StoreParts(lease uint64, cid, data []byte) [][]byte {
	var l [9]byte
	binary.BigEndian.PutUint64(l[:8], lease)
	l[8] = byte(len(cid))
	return [][]byte{l[:], cid, data}
}

// ParseStore decodes a TypeStore payload.
func ParseStore(p []byte) (Store, error) {
	if len(p) < 9 {
		return Store{}, fmt.Errorf("%w: store of %d bytes", ErrMalformed, len(p))
	}
	cl := int(p[8])
	if cl == 0 || len(p) < 9+cl {
		return Store{}, fmt.Errorf("%w: store CID length %d", ErrMalformed, cl)
	}
	return Store{Lease: binary.BigEndian.Uint64(p), CID: p[9 : 9+cl], Data: p[9+cl:]}, nil
}

// CIDParts returns the payload of a fetch or has request.
func CIDParts(cid []byte) [][]byte { return [][]byte{{byte(len(cid))}, cid} }

// ParseCID decodes a TypeFetch or TypeHas payload.
func ParseCID(p []byte) ([]byte, error) {
	if len(p) < 2 || int(p[0]) != len(p)-1 {
		return nil, fmt.Errorf("%w: CID payload of %d bytes", ErrMalformed, len(p))
	}
	return p[1:], nil
}

// ErrorParts returns the payload of an error response.
func ErrorParts(code Code, msg string) [][]byte {
	if len(msg) > 1024 {
		msg = msg[:1024]
	}
	var c [2]byte
	binary.BigEndian.PutUint16(c[:], uint16(code))
	return [][]byte{c[:], []byte(msg)}
}

// ParseError decodes an error response. The message is a peer's words: its
// control characters and invalid UTF-8 are replaced (printable.String)
// before it can reach a log or a terminal.
func ParseError(p []byte) (*RemoteError, error) {
	if len(p) < 2 || len(p) > 2+1024 {
		return nil, fmt.Errorf("%w: error payload of %d bytes", ErrMalformed, len(p))
	}
	return &RemoteError{Code: Code(binary.BigEndian.Uint16(p)), Msg: printable.String(string(p[2:]))}, nil
}
