package blockstore

import (
	"bytes"
	"crypto/sha256"
	"fmt"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

// CheckCID accepts only the CID form umbra writes (ErrCIDForm otherwise):
// version 1, raw codec, a sha2-256 multihash with a full 32-byte digest. A
// truncated digest, another hash function or another codec would let one
// block be stored under many names, or many blocks under one.
func CheckCID(c cid.Cid) error {
	if !c.Defined() || c.Version() != 1 || c.Type() != cid.Raw {
		return ErrCIDForm
	}
	h := c.Hash()
	if len(h) != 34 || h[0] != mh.SHA2_256 || h[1] != 32 {
		return ErrCIDForm
	}
	return nil
}

// Verify checks that c has umbra's form (CheckCID) and that data hashes to
// it.
func Verify(c cid.Cid, data []byte) error {
	if err := CheckCID(c); err != nil {
		return err
	}
	sum := sha256.Sum256(data)
	if !bytes.Equal(sum[:], c.Hash()[2:]) {
		return fmt.Errorf("%w: %s", ErrHashMismatch, Short(c))
	}
	return nil
}

// hashedBlock is a block whose CID NewBlock computed from its bytes, so the
// store need not hash it again.
type hashedBlock struct{ *blocks.BasicBlock }

// NewBlock makes a CIDv1 raw SHA-256 block by hashing data. Stores skip the
// write-time hash check for blocks made here.
func NewBlock(data []byte) (blocks.Block, [32]byte) {
	d := sha256.Sum256(data)
	b, _ := blocks.NewBlockWithCid(data, CIDOf(d))
	return hashedBlock{b}, d
}

// CIDOf returns the CID umbra gives a block whose SHA-256 is digest:
// CIDv1, raw, sha2-256.
func CIDOf(digest [32]byte) cid.Cid {
	buf := make([]byte, 34)
	buf[0], buf[1] = mh.SHA2_256, 32
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
