package shard

import (
	"bufio"
	"encoding/binary"
	"fmt"

	"github.com/umbra-store/umbra/internal/printable"
)

// Code is an error code in an ERROR frame.
type Code uint16

// Error codes. Values are part of the protocol.
const (
	CodeNotFound  Code = 1 // no such block
	CodeHash      Code = 2 // data does not match its CID
	CodeFull      Code = 3 // storage quota reached
	CodeRefused   Code = 4 // this peer does not store for you
	CodeMalformed Code = 5 // bad frame; the stream is closed after it
	CodeInternal  Code = 6 // the receiver failed (disk error …) or is busy
	CodeInvalid   Code = 7 // a folder record that is not valid (signature, expiry)
)

var codeNames = map[Code]string{CodeNotFound: "not found", CodeHash: "hash mismatch",
	CodeFull: "storage full", CodeRefused: "refused", CodeMalformed: "malformed frame", CodeInternal: "internal error",
	CodeInvalid: "invalid record"}

func (c Code) String() string {
	if n, ok := codeNames[c]; ok {
		return n
	}
	return fmt.Sprintf("code %d", uint16(c))
}

// maxErrorMsg bounds an ERROR's message, in bytes.
const maxErrorMsg = 1024

// RemoteError is an ERROR frame received from a peer.
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

// ErrorParts returns the payload of an ERROR frame.
func ErrorParts(code Code, msg string) [][]byte {
	if len(msg) > maxErrorMsg {
		msg = msg[:maxErrorMsg]
	}
	var c [2]byte
	binary.BigEndian.PutUint16(c[:], uint16(code))
	return [][]byte{c[:], []byte(msg)}
}

// ParseError decodes an ERROR payload. The message is a peer's words: its
// control characters and invalid UTF-8 are replaced (printable.String)
// before it can reach a log or a terminal.
func ParseError(p []byte) (*RemoteError, error) {
	if len(p) < 2 || len(p) > 2+maxErrorMsg {
		return nil, fmt.Errorf("%w: error payload of %d bytes", ErrMalformed, len(p))
	}
	return &RemoteError{Code: Code(binary.BigEndian.Uint16(p)), Msg: printable.String(string(p[2:]))}, nil
}

func writeErr(w *bufio.Writer, code Code, msg string) error {
	return WriteFrame(w, TypeError, ErrorParts(code, msg)...)
}
