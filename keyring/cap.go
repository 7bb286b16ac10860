package keyring

import (
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"log/slog"
	"strings"

	"github.com/umbra-store/umbra/internal/kind"
)

// Kind names what a capability grants. Values are part of the format: a
// retired kind is never reused.
type Kind byte

const (
	KindFileRead   Kind = 0x01 // root + read key: read the file
	KindFileVerify Kind = 0x02 // root + verify key: check and repair, no plaintext
	KindDirWrite   Kind = 0x03 // public key + seed: change the folder, and read it
	KindDirRead    Kind = 0x04 // public key + read key: list and read, recursively
	KindDirVerify  Kind = 0x05 // public key + verify key: check and repair the tree
)

// CapVersion is the version byte of every capability this package writes.
const CapVersion = 0x01

const (
	capPrefix   = "umbra:"
	checksumLen = 4
	capBodyLen  = 1 + 1 + 32 + KeySize // version, kind, root digest or public key, key
	capBytesLen = capBodyLen + checksumLen
)

var kindNames = map[Kind]string{KindFileRead: "fr", KindFileVerify: "fv",
	KindDirWrite: "dw", KindDirRead: "dr", KindDirVerify: "dv"}

func (k Kind) String() string {
	if n, ok := kindNames[k]; ok {
		return n
	}
	return fmt.Sprintf("kind(0x%02x)", byte(k))
}

// Errors returned by ParseCap, ParseReadCap and ParseVerifyCap, wrapped with
// detail; test with errors.Is.
var (
	ErrMalformed   = kind.New(kind.Usage, "keyring: malformed capability")
	ErrUnknownKind = kind.New(kind.Usage, "keyring: unknown capability kind")
	ErrChecksum    = kind.New(kind.Usage, "keyring: capability checksum mismatch (mistyped or cut short?)")
	ErrTruncated   = kind.New(kind.Usage, "keyring: capability truncated")
	ErrVersion     = kind.New(kind.Usage, "keyring: unsupported capability version")
	ErrWrongKind   = kind.New(kind.Usage, "keyring: wrong capability kind")
)

var capEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// Cap is any parsed capability.
type Cap interface {
	Kind() Kind
	// Encode returns the capability's text form. It is a secret: print it
	// only to the user who asked for it, never to a log.
	Encode() string
}

// ReadCap grants reading one file: root digest + read key.
type ReadCap struct {
	root [32]byte
	key  Key
}

// VerifyCap grants checking and repairing one file: root digest + verify key.
// It reveals the shard layout, never plaintext.
type VerifyCap struct {
	root [32]byte
	key  Key
}

var (
	_ Cap = ReadCap{}
	_ Cap = VerifyCap{}
)

// NewReadCap makes a read capability.
func NewReadCap(root [32]byte, readKey Key) ReadCap { return ReadCap{root: root, key: readKey} }

// NewVerifyCap makes a verify capability.
func NewVerifyCap(root [32]byte, verifyKey Key) VerifyCap {
	return VerifyCap{root: root, key: verifyKey}
}

// VerifyKeyInfo is the HKDF info string that derives a file's verify key from
// its read key.
const VerifyKeyInfo = "umbra file verify-key v1"

func (c ReadCap) Kind() Kind       { return KindFileRead }
func (c ReadCap) Root() [32]byte   { return c.root }
func (c ReadCap) ReadKey() Key     { return c.key }
func (c ReadCap) Encode() string   { return encodeCap(KindFileRead, c.root, c.key) }
func (c ReadCap) VerifyKey() Key   { return c.key.Derive(VerifyKeyInfo) }
func (c VerifyCap) Kind() Kind     { return KindFileVerify }
func (c VerifyCap) Root() [32]byte { return c.root }
func (c VerifyCap) Key() Key       { return c.key }
func (c VerifyCap) Encode() string { return encodeCap(KindFileVerify, c.root, c.key) }

// Verify attenuates a read capability to the verify capability of the same
// file.
func (c ReadCap) Verify() VerifyCap { return VerifyCap{root: c.root, key: c.VerifyKey()} }

// Equal compares in constant time.
func (c ReadCap) Equal(o ReadCap) bool { return c.root == o.root && c.key.Equal(o.key) }

// Equal compares in constant time.
func (c VerifyCap) Equal(o VerifyCap) bool { return c.root == o.root && c.key.Equal(o.key) }

func (c ReadCap) Format(f fmt.State, _ rune)   { fmt.Fprint(f, "umbra:fr:[redacted]") }
func (c VerifyCap) Format(f fmt.State, _ rune) { fmt.Fprint(f, "umbra:fv:[redacted]") }
func (c ReadCap) LogValue() slog.Value         { return slog.StringValue("umbra:fr:[redacted]") }
func (c VerifyCap) LogValue() slog.Value       { return slog.StringValue("umbra:fv:[redacted]") }

func checksum(kind Kind, body []byte) []byte {
	h := sha256.New()
	h.Write([]byte(capPrefix + kind.String() + ":"))
	h.Write(body)
	return h.Sum(nil)[:checksumLen]
}

func encodeCap(kind Kind, first [32]byte, key Key) string {
	b := make([]byte, 0, capBytesLen)
	b = append(b, CapVersion, byte(kind))
	b = append(b, first[:]...)
	b = append(b, key.Bytes()...)
	b = append(b, checksum(kind, b)...)
	return capPrefix + kind.String() + ":" + capEncoding.EncodeToString(b)
}

// ParseCap parses any capability. Parsing is strict: exactly one text encodes
// each capability, so ParseCap(s).Encode() == s for every s it accepts.
func ParseCap(s string) (Cap, error) {
	rest, ok := strings.CutPrefix(s, capPrefix)
	if !ok {
		return nil, fmt.Errorf("%w: does not start with %q", ErrMalformed, capPrefix)
	}
	name, data, ok := strings.Cut(rest, ":")
	if !ok {
		return nil, fmt.Errorf("%w: no kind (want umbra:KIND:DATA)", ErrMalformed)
	}
	var kind Kind
	for k, n := range kindNames {
		if n == name {
			kind = k
		}
	}
	if kind == 0 {
		return nil, fmt.Errorf("%w %q", ErrUnknownKind, truncateForError(name))
	}
	if len(data) < capEncoding.EncodedLen(capBytesLen) {
		return nil, fmt.Errorf("%w: %d of %d characters", ErrTruncated, len(data), capEncoding.EncodedLen(capBytesLen))
	}
	if len(data) > capEncoding.EncodedLen(capBytesLen) {
		return nil, fmt.Errorf("%w: %d characters, want %d", ErrMalformed, len(data), capEncoding.EncodedLen(capBytesLen))
	}
	b, err := capEncoding.DecodeString(data)
	if err != nil || capEncoding.EncodeToString(b) != data {
		// Re-encoding rejects non-zero trailing bits: one text per value.
		return nil, fmt.Errorf("%w: not lowercase base32", ErrMalformed)
	}
	body, sum := b[:capBodyLen], b[capBodyLen:]
	if string(checksum(kind, body)) != string(sum) {
		return nil, ErrChecksum
	}
	if body[0] != CapVersion {
		return nil, fmt.Errorf("%w %d (this umbra reads version %d; upgrade umbra)", ErrVersion, body[0], CapVersion)
	}
	if Kind(body[1]) != kind {
		return nil, fmt.Errorf("%w: text says %s, payload says %s", ErrMalformed, kind, Kind(body[1]))
	}
	var first [32]byte
	copy(first[:], body[2:34])
	key, _ := KeyFromBytes(body[34:])
	switch kind {
	case KindFileRead:
		return ReadCap{root: first, key: key}, nil
	case KindFileVerify:
		return VerifyCap{root: first, key: key}, nil
	case KindDirWrite:
		w := NewDirWriteCap(key)
		if w.pub != first {
			// One text per capability: the public key is the seed's.
			return nil, fmt.Errorf("%w: the public key is not the seed's", ErrMalformed)
		}
		return w, nil
	case KindDirRead:
		return DirReadCap{pub: first, key: key}, nil
	case KindDirVerify:
		return DirVerifyCap{pub: first, key: key}, nil
	}
	return nil, fmt.Errorf("%w %q", ErrUnknownKind, name)
}

// ParseReadCap parses a file read capability.
func ParseReadCap(s string) (ReadCap, error) {
	c, err := ParseCap(s)
	if err != nil {
		return ReadCap{}, err
	}
	rc, ok := c.(ReadCap)
	if !ok {
		return ReadCap{}, fmt.Errorf("%w: this is a %s capability, a file read capability (umbra:fr:...) is needed", ErrWrongKind, c.Kind())
	}
	return rc, nil
}

// ParseVerifyCap parses a file verify capability; a read capability is
// accepted and attenuated.
func ParseVerifyCap(s string) (VerifyCap, error) {
	c, err := ParseCap(s)
	if err != nil {
		return VerifyCap{}, err
	}
	switch c := c.(type) {
	case VerifyCap:
		return c, nil
	case ReadCap:
		return c.Verify(), nil
	}
	return VerifyCap{}, fmt.Errorf("%w: %s", ErrWrongKind, c.Kind())
}

func truncateForError(s string) string {
	if len(s) > 16 {
		return s[:16] + "…"
	}
	return s
}
