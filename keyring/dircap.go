package keyring

import (
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"log/slog"
)

// Key derivation of a directory (docs/format.md "Directory keys"): a random
// seed D is the write capability's secret; it is also the Ed25519 seed that
// signs the directory's records.
const (
	DirReadKeyInfo   = "umbra dir read-key v1"   // read key  = HKDF(D, …)
	DirVerifyKeyInfo = "umbra dir verify-key v1" // verify key = HKDF(read key, …)
	DirWriteKeyInfo  = "umbra dir write-key v1"  // write key = HKDF(D, …): seals children's write capabilities
	dirIDLabel       = "umbra dir id v1"
)

// DirWriteCap grants changing a directory, and everything a DirReadCap
// grants: its seed D (and the public key it makes).
type DirWriteCap struct {
	pub  [32]byte
	seed Key
}

// DirReadCap grants listing and reading a directory and everything under
// it: its public key and read key.
type DirReadCap struct {
	pub [32]byte
	key Key
}

// DirVerifyCap grants checking and repairing a directory's tree, with no
// name and no content: its public key and verify key.
type DirVerifyCap struct {
	pub [32]byte
	key Key
}

var (
	_ Cap = DirWriteCap{}
	_ Cap = DirReadCap{}
	_ Cap = DirVerifyCap{}
)

// GenerateDirWriteCap makes a new directory: a fresh random seed.
func GenerateDirWriteCap() DirWriteCap { return NewDirWriteCap(GenerateKey()) }

// NewDirWriteCap makes the write capability of the directory with this seed.
func NewDirWriteCap(seed Key) DirWriteCap {
	pub := ed25519.NewKeyFromSeed(seed.b[:]).Public().(ed25519.PublicKey)
	return DirWriteCap{pub: [32]byte(pub), seed: seed}
}

// NewDirReadCap makes a directory read capability.
func NewDirReadCap(pub [32]byte, readKey Key) DirReadCap { return DirReadCap{pub: pub, key: readKey} }

// NewDirVerifyCap makes a directory verify capability.
func NewDirVerifyCap(pub [32]byte, verifyKey Key) DirVerifyCap {
	return DirVerifyCap{pub: pub, key: verifyKey}
}

// DirID is a directory's identifier, the key of its records:
// SHA-256("umbra dir id v1" ‖ public key).
func DirID(pub [32]byte) [32]byte {
	return sha256.Sum256(append([]byte(dirIDLabel), pub[:]...))
}

func (c DirWriteCap) Kind() Kind          { return KindDirWrite }
func (c DirWriteCap) Encode() string      { return encodeCap(KindDirWrite, c.pub, c.seed) }
func (c DirWriteCap) PublicKey() [32]byte { return c.pub }
func (c DirWriteCap) ID() [32]byte        { return DirID(c.pub) }

// Seed returns the directory's seed. Do not log it.
func (c DirWriteCap) Seed() Key { return c.seed }

// SigningKey returns the Ed25519 key that signs the directory's records.
func (c DirWriteCap) SigningKey() ed25519.PrivateKey { return ed25519.NewKeyFromSeed(c.seed.b[:]) }

// WriteKey returns the key that seals the write capabilities of the
// directory's children, so that only write-capability holders open them.
func (c DirWriteCap) WriteKey() Key { return c.seed.Derive(DirWriteKeyInfo) }

// Read attenuates to the read capability of the same directory.
func (c DirWriteCap) Read() DirReadCap {
	return DirReadCap{pub: c.pub, key: c.seed.Derive(DirReadKeyInfo)}
}

func (c DirReadCap) Kind() Kind          { return KindDirRead }
func (c DirReadCap) Encode() string      { return encodeCap(KindDirRead, c.pub, c.key) }
func (c DirReadCap) PublicKey() [32]byte { return c.pub }
func (c DirReadCap) ID() [32]byte        { return DirID(c.pub) }
func (c DirReadCap) ReadKey() Key        { return c.key }

// Verify attenuates to the verify capability of the same directory.
func (c DirReadCap) Verify() DirVerifyCap {
	return DirVerifyCap{pub: c.pub, key: c.key.Derive(DirVerifyKeyInfo)}
}

func (c DirVerifyCap) Kind() Kind          { return KindDirVerify }
func (c DirVerifyCap) Encode() string      { return encodeCap(KindDirVerify, c.pub, c.key) }
func (c DirVerifyCap) PublicKey() [32]byte { return c.pub }
func (c DirVerifyCap) ID() [32]byte        { return DirID(c.pub) }
func (c DirVerifyCap) VerifyKey() Key      { return c.key }

// Equal compares in constant time.
func (c DirWriteCap) Equal(o DirWriteCap) bool { return c.pub == o.pub && c.seed.Equal(o.seed) }

// Equal compares in constant time.
func (c DirReadCap) Equal(o DirReadCap) bool { return c.pub == o.pub && c.key.Equal(o.key) }

// Equal compares in constant time.
func (c DirVerifyCap) Equal(o DirVerifyCap) bool { return c.pub == o.pub && c.key.Equal(o.key) }

func (DirWriteCap) Format(f fmt.State, _ rune)  { fmt.Fprint(f, "umbra:dw:[redacted]") }
func (DirReadCap) Format(f fmt.State, _ rune)   { fmt.Fprint(f, "umbra:dr:[redacted]") }
func (DirVerifyCap) Format(f fmt.State, _ rune) { fmt.Fprint(f, "umbra:dv:[redacted]") }
func (DirWriteCap) LogValue() slog.Value        { return slog.StringValue("umbra:dw:[redacted]") }
func (DirReadCap) LogValue() slog.Value         { return slog.StringValue("umbra:dr:[redacted]") }
func (DirVerifyCap) LogValue() slog.Value       { return slog.StringValue("umbra:dv:[redacted]") }

// ParseDirReadCap parses a directory read capability; a write capability is
// accepted and attenuated.
func ParseDirReadCap(s string) (DirReadCap, error) {
	c, err := ParseCap(s)
	if err != nil {
		return DirReadCap{}, err
	}
	switch c := c.(type) {
	case DirReadCap:
		return c, nil
	case DirWriteCap:
		return c.Read(), nil
	}
	return DirReadCap{}, fmt.Errorf("%w: this is a %s capability, a folder read capability (umbra:dr:...) is needed", ErrWrongKind, c.Kind())
}

// ParseDirVerifyCap parses a directory verify capability; a write or read
// capability is accepted and attenuated.
func ParseDirVerifyCap(s string) (DirVerifyCap, error) {
	c, err := ParseCap(s)
	if err != nil {
		return DirVerifyCap{}, err
	}
	switch c := c.(type) {
	case DirVerifyCap:
		return c, nil
	case DirReadCap:
		return c.Verify(), nil
	case DirWriteCap:
		return c.Read().Verify(), nil
	}
	return DirVerifyCap{}, fmt.Errorf("%w: this is a %s capability, a folder capability is needed", ErrWrongKind, c.Kind())
}

// childSeedLabel keys the pad that seals a child folder's seed in its
// parent's snapshot.
const childSeedLabel = "umbra dir child-seed v1"

// SealChild seals child's seed for this folder's snapshot: seed XOR
// HMAC(write key, "umbra dir child-seed v1" ‖ child public key). Only a
// holder of this folder's write capability opens it (OpenChild).
func (c DirWriteCap) SealChild(child DirWriteCap) [32]byte {
	pad := c.WriteKey().MAC([]byte(childSeedLabel), child.pub[:])
	var out [32]byte
	for i := range out {
		out[i] = child.seed.b[i] ^ pad.b[i]
	}
	return out
}

// OpenChild opens a seed sealed by SealChild for the child folder with
// public key pub; ok is false when it does not make that key (sealed by
// another folder, or altered).
func (c DirWriteCap) OpenChild(pub [32]byte, sealed [32]byte) (child DirWriteCap, ok bool) {
	pad := c.WriteKey().MAC([]byte(childSeedLabel), pub[:])
	var seed Key
	for i := range seed.b {
		seed.b[i] = sealed[i] ^ pad.b[i]
	}
	child = NewDirWriteCap(seed)
	if child.pub != pub {
		return DirWriteCap{}, false
	}
	return child, true
}

// parentKeyLabel keys the pad that seals a snapshot's parent's read key.
const parentKeyLabel = "umbra dir parent-key v1"

// SealParent seals the read key of parent, the snapshot a new snapshot of
// this folder was made from: key XOR HMAC(write key, "umbra dir parent-key
// v1" ‖ parent root). Only write-capability holders open it (OpenParent);
// readers cannot walk back to earlier versions.
func (c DirWriteCap) SealParent(parent ReadCap) [32]byte {
	pad := c.WriteKey().MAC([]byte(parentKeyLabel), parent.root[:])
	var out [32]byte
	for i := range out {
		out[i] = parent.key.b[i] ^ pad.b[i]
	}
	return out
}

// OpenParent opens a parent's read key sealed by SealParent. A wrong key
// is found out when the snapshot is opened (its root's key commitment).
func (c DirWriteCap) OpenParent(root [32]byte, sealed [32]byte) ReadCap {
	pad := c.WriteKey().MAC([]byte(parentKeyLabel), root[:])
	var k Key
	for i := range k.b {
		k.b[i] = sealed[i] ^ pad.b[i]
	}
	return ReadCap{root: root, key: k}
}
