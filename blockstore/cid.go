package blockstore

import (
	"bytes"
	"crypto/sha256"
	"fmt"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
	"github.com/zeebo/blake3"
)

// Hash is the function a block is addressed by: its multihash code. umbra
// names manifest nodes by SHA-256 and shards by BLAKE3 (docs/format.md,
// "Why BLAKE3 for shards").
type Hash uint64

// The two hash functions umbra's blocks are named by, with full 32-byte
// digests.
const (
	SHA256 Hash = mh.SHA2_256
	BLAKE3 Hash = mh.BLAKE3
)

// Sum returns data's 32-byte digest under h. Any h other than SHA256 and
// BLAKE3 is a programming error: Sum panics rather than name a block by a
// digest of another function.
func (h Hash) Sum(data []byte) [32]byte {
	switch h {
	case BLAKE3:
		return blake3.Sum256(data)
	case SHA256:
		return sha256.Sum256(data)
	}
	panic(fmt.Sprintf("blockstore: hash function 0x%x", uint64(h)))
}

func (h Hash) String() string {
	if h == BLAKE3 {
		return "blake3"
	}
	return "sha2-256"
}

// CheckCID accepts only the CID forms umbra writes (ErrCIDForm otherwise):
// version 1, raw codec, a sha2-256 or blake3 multihash with a full 32-byte
// digest. A truncated digest, another hash function or another codec would
// let one block be stored under many names, or many blocks under one.
func CheckCID(c cid.Cid) error {
	if !c.Defined() || c.Version() != 1 || c.Type() != cid.Raw {
		return ErrCIDForm
	}
	h := c.Hash()
	if len(h) != 34 || (h[0] != mh.SHA2_256 && h[0] != mh.BLAKE3) || h[1] != 32 {
		return ErrCIDForm
	}
	return nil
}

// Verify checks that c has umbra's form (CheckCID) and that data hashes to
// it under the function c names.
func Verify(c cid.Cid, data []byte) error {
	if err := CheckCID(c); err != nil {
		return err
	}
	sum := Hash(c.Hash()[0]).Sum(data)
	if !bytes.Equal(sum[:], c.Hash()[2:]) {
		return fmt.Errorf("%w: %s", ErrHashMismatch, Short(c))
	}
	return nil
}

// hashedBlock is a block whose CID NewBlock computed from its bytes, so the
// store need not hash it again.
type hashedBlock struct{ *blocks.BasicBlock }

// NewBlock makes a CIDv1 raw SHA-256 block (a manifest node) by hashing
// data. Stores skip the write-time hash check for blocks made here.
func NewBlock(data []byte) (blocks.Block, [32]byte) { return NewBlockHash(SHA256, data) }

// NewBlockHash makes a CIDv1 raw block named by h (BLAKE3 for shards) by
// hashing data. Stores skip the write-time hash check for blocks made here.
func NewBlockHash(h Hash, data []byte) (blocks.Block, [32]byte) {
	d := h.Sum(data)
	b, _ := blocks.NewBlockWithCid(data, CIDWith(h, d))
	return hashedBlock{b}, d
}

// CIDOf returns the CID umbra gives a block whose SHA-256 is digest (a
// manifest node): CIDv1, raw, sha2-256.
func CIDOf(digest [32]byte) cid.Cid { return CIDWith(SHA256, digest) }

// CIDWith returns the CIDv1 raw of a block whose digest under h is digest
// (h SHA256 or BLAKE3; it panics on any other).
func CIDWith(h Hash, digest [32]byte) cid.Cid {
	if h != SHA256 && h != BLAKE3 {
		panic(fmt.Sprintf("blockstore: hash function 0x%x", uint64(h)))
	}
	buf := make([]byte, 34)
	buf[0], buf[1] = byte(h), 32
	copy(buf[2:], digest[:])
	return cid.NewCidV1(cid.Raw, mh.Multihash(buf))
}

// Short returns the last 8 characters of a CID, for logs and errors.
func Short(c cid.Cid) string {
	s := c.String()
	if len(s) > 8 {
		return "…" + s[len(s)-8:]
	}
	return s
}
