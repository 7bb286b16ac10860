package dht

import (
	"bytes"
	"crypto/sha256"
	"sort"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Rank orders peers for a block: by SHA-256(peer ID bytes) XOR
// SHA-256(multihash of c), compared as 32-byte big-endian numbers, smallest
// first. Every uploader computes the same order for the same block
// (docs/protocol.md "Placement"). peers is not modified.
func Rank(peers []peer.ID, c cid.Cid) []peer.ID {
	key := sha256.Sum256(c.Hash())
	type scored struct {
		p peer.ID
		d [32]byte
	}
	s := make([]scored, len(peers))
	for i, p := range peers {
		h := sha256.Sum256([]byte(p))
		for j := range h {
			h[j] ^= key[j]
		}
		s[i] = scored{p, h}
	}
	sort.SliceStable(s, func(i, j int) bool { return bytes.Compare(s[i].d[:], s[j].d[:]) < 0 })
	out := make([]peer.ID, len(s))
	for i := range s {
		out[i] = s[i].p
	}
	return out
}
