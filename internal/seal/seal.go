package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"fmt"
	"math/bits"

	"github.com/zeebo/blake3"

	"github.com/umbra-store/umbra/internal/kind"
	"github.com/umbra-store/umbra/keyring"
)

// SuiteAES256GCM is the only suite of format version 1: Padmé padding with a
// 0x80 terminator, AES-256-GCM, zero nonce. 0x02 is reserved for
// XChaCha20-Poly1305.
const SuiteAES256GCM = 0x01

const (
	tagSize = 16
	// Overhead is the size a sealed chunk adds on top of its padded length.
	Overhead = 1 + tagSize
)

// Errors returned by Open and Unpad.
var (
	ErrAuth    = kind.New(kind.Corrupt, "seal: chunk failed authentication (wrong key or corrupted data)")
	ErrSuite   = kind.New(kind.Corrupt, "seal: unknown cipher suite")
	ErrPadding = kind.New(kind.Corrupt, "seal: malformed padding")
	ErrShort   = kind.New(kind.Corrupt, "seal: sealed chunk too short")
)

var zeroNonce [12]byte

// Padme returns the padded length of an n-byte message (Nikitin et al.,
// "Reducing metadata leakage from encrypted files and communication with
// PURBs", 2019): the low bits of n are rounded up so that at most
// O(log log n) bits of the length remain. Overhead is at most 12%.
func Padme(n int) int {
	if n < 2 {
		return n
	}
	e := bits.Len(uint(n)) - 1 // floor(log2 n)
	s := bits.Len(uint(e))     // floor(log2 e) + 1
	last := e - s
	if last <= 0 {
		return n
	}
	mask := (1 << last) - 1
	return (n + mask) &^ mask
}

// PaddedLen is the padded length of an n-byte plaintext (one terminator byte
// included).
func PaddedLen(n int) int { return Padme(n + 1) }

// SealedLen is the size of the sealed form of an n-byte plaintext.
func SealedLen(n int) int { return Overhead + PaddedLen(n) }

// Pad writes plain ‖ 0x80 ‖ zeros into dst[:PaddedLen(len(plain))] and returns
// it. dst may alias plain's backing array at the same offset.
func Pad(dst, plain []byte) []byte {
	p := PaddedLen(len(plain))
	dst = dst[:p]
	if len(plain) > 0 && &dst[0] != &plain[0] { // in place: nothing to move
		copy(dst, plain)
	}
	dst[len(plain)] = 0x80
	clear(dst[len(plain)+1:])
	return dst
}

// Unpad strips the padding. It accepts exactly the outputs of Pad: the length
// must be Padme of the content length plus one.
func Unpad(padded []byte) ([]byte, error) {
	i := len(padded) - 1
	for i >= 0 && padded[i] == 0 {
		i--
	}
	if i < 0 || padded[i] != 0x80 {
		return nil, ErrPadding
	}
	if PaddedLen(i) != len(padded) {
		return nil, fmt.Errorf("%w: %d bytes of padding after %d bytes", ErrPadding, len(padded)-i, i)
	}
	return padded[:i], nil
}

// ConvergentKey derives a chunk key from the chunk itself:
// HMAC-SHA256(convergence secret, "umbra chunk v2" ‖ BLAKE3-256(chunk)).
// (Version 1, before manifest version 0x03, hashed the chunk with SHA-256.
// Readers take chunk keys from the manifest; a put reusing a prior
// version's chunks compares keys, and reuses only version 0x03 files.)
func ConvergentKey(secret keyring.Key, chunk []byte) keyring.Key {
	h := blake3.Sum256(chunk)
	return secret.MAC([]byte("umbra chunk v2"), h[:])
}

func newGCM(key keyring.Key) cipher.AEAD {
	b, err := aes.NewCipher(key.Bytes())
	if err != nil {
		panic("seal: " + err.Error()) // key size is fixed at 32
	}
	g, err := cipher.NewGCM(b)
	if err != nil {
		panic("seal: " + err.Error())
	}
	return g
}

// Seal pads and encrypts plain into dst, which must have room for
// SealedLen(len(plain)) bytes, and returns the sealed chunk. plain may lie at
// dst[1:] (sealing in place); it must not overlap dst otherwise.
func Seal(dst []byte, key keyring.Key, plain []byte) []byte {
	n := SealedLen(len(plain))
	if cap(dst) < n {
		dst = make([]byte, n)
	}
	dst = dst[:n]
	dst[0] = SuiteAES256GCM
	padded := Pad(dst[1:1], plain)
	// Seal in place: padded and the output share dst[1:].
	newGCM(key).Seal(dst[1:1], zeroNonce[:], padded, dst[:1])
	return dst
}

// Open authenticates and decrypts a sealed chunk into dst (which may be
// sealed[1:] to decrypt in place, or nil) and returns the plaintext.
func Open(dst []byte, key keyring.Key, sealed []byte) ([]byte, error) {
	if len(sealed) < Overhead+1 {
		return nil, ErrShort
	}
	if sealed[0] != SuiteAES256GCM {
		return nil, fmt.Errorf("%w 0x%02x", ErrSuite, sealed[0])
	}
	padded, err := newGCM(key).Open(dst[:0], zeroNonce[:], sealed[1:], sealed[:1])
	if err != nil {
		return nil, ErrAuth
	}
	return Unpad(padded)
}
