package keyring

import (
	"bytes"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"log/slog"
)

// KeySize is the size of every symmetric key umbra uses, in bytes.
const KeySize = 32

// incomparable makes a struct unusable with ==, so that secrets are compared
// only through constant-time Equal.
type incomparable [0]func()

// Key is a 256-bit secret: a chunk key, a file read key or verify key, a user
// secret. It never prints itself: %v, %s, %x and slog all show "[redacted]".
// Use Bytes to get at the material.
type Key struct {
	_ incomparable
	b [KeySize]byte
}

// GenerateKey draws a fresh key from crypto/rand.
func GenerateKey() Key {
	var k Key
	if _, err := rand.Read(k.b[:]); err != nil {
		panic("keyring: crypto/rand failed: " + err.Error())
	}
	return k
}

// KeyFromBytes copies a 32-byte slice into a Key.
func KeyFromBytes(b []byte) (Key, error) {
	var k Key
	if len(b) != KeySize {
		return k, fmt.Errorf("keyring: key is %d bytes, want %d", len(b), KeySize)
	}
	copy(k.b[:], b)
	return k, nil
}

// Bytes returns a copy of the key material.
func (k Key) Bytes() []byte { return bytes.Clone(k.b[:]) }

// Array returns a pointer to the key material.
func (k *Key) Array() *[KeySize]byte { return &k.b }

// Equal reports whether two keys are equal, in constant time.
func (k Key) Equal(o Key) bool { return subtle.ConstantTimeCompare(k.b[:], o.b[:]) == 1 }

// IsZero reports whether the key is all zero bytes (never a valid secret).
func (k Key) IsZero() bool { return k.Equal(Key{}) }

// Format implements fmt.Formatter so that no verb prints key material.
func (Key) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte("[redacted]")) }

// LogValue implements slog.LogValuer.
func (Key) LogValue() slog.Value { return slog.StringValue("[redacted]") }

// Derive returns HKDF-SHA256(k, info) as a new key. The info strings used by
// umbra are listed in docs/format.md ("Key derivation").
func (k Key) Derive(info string) Key {
	out, err := hkdf.Key(sha256.New, k.b[:], nil, info, KeySize)
	if err != nil {
		panic("keyring: hkdf: " + err.Error()) // only on length > 255*32
	}
	var d Key
	copy(d.b[:], out)
	return d
}

// MAC returns HMAC-SHA256(k, parts...) as a key.
func (k Key) MAC(parts ...[]byte) Key {
	m := hmac.New(sha256.New, k.b[:])
	for _, p := range parts {
		m.Write(p)
	}
	var d Key
	m.Sum(d.b[:0])
	return d
}
