package engine

import (
	"context"
	"crypto/sha256"
	"fmt"

	"github.com/ipfs/go-cid"

	"github.com/umbra-store/umbra/blockstore"
	"github.com/umbra-store/umbra/erasure"
	"github.com/umbra-store/umbra/internal/format"
	"github.com/umbra-store/umbra/keyring"
)

// Stripe is one stripe of a file as its manifest names it, read with the
// verify key alone: enough to check, rebuild and place its shards, not to
// read a byte of the file.
type Stripe struct {
	Chunk, Index int // the chunk's position in the file, the stripe's in the chunk
	K, M         int
	ShardSize    int
	Shards       [][32]byte      // k+m digests
	Hash         blockstore.Hash // the function of the digests
	Hints        [][]byte        // per shard, the peer ID the manifest hints (nil: none)
}

// CID returns the CID of shard i.
func (s Stripe) CID(i int) cid.Cid { return blockstore.CIDWith(s.Hash, s.Shards[i]) }

// maxWalk bounds the entries a verify walk visits: without the read part
// there is no size to bound it by (2^22 chunks is 4 TiB at 1 MiB).
const maxWalk = 1 << 22

// Walk reads the manifest of the file vc names with its verify key and
// calls node with each manifest node block (digest, bytes, and how many
// copies its stripes have: k+m), root first,
// and stripe with each stripe of each chunk, in order.
func (e *Engine) Walk(ctx context.Context, vc keyring.VerifyCap, node func(digest [32]byte, block []byte, copies int) error, stripe func(Stripe) error) error {
	budget := maxWalk
	seen := map[[32]byte]bool{} // a node named twice is walked once
	var visit func(digest [32]byte, vkey keyring.Key, level int, chunk *int) error
	visit = func(digest [32]byte, vkey keyring.Key, level int, chunk *int) error {
		if seen[digest] {
			return nil
		}
		seen[digest] = true
		raw, err := e.getNode(ctx, digest)
		if isNotFound(err) {
			return fmt.Errorf("%w: manifest block %x… is not held by any peer", ErrNotFound, digest[:6])
		}
		if err != nil {
			return err
		}
		if sha256.Sum256(raw) != digest {
			return fmt.Errorf("%w: manifest block %x… does not match its hash", ErrCorrupt, digest[:6])
		}
		n, err := format.OpenVerify(raw, vkey)
		if err != nil {
			return err
		}
		if level >= 0 && int(n.Level) != level {
			return fmt.Errorf("%w: manifest node %x… is at the wrong level", ErrCorrupt, digest[:6])
		}
		if err := node(digest, raw, n.K+n.M); err != nil {
			return err
		}
		coder, err := erasure.New(n.K, n.M)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		for _, ent := range n.Entries {
			if budget--; budget < 0 {
				return fmt.Errorf("%w: manifest has more than %d entries", ErrCorrupt, maxWalk)
			}
			if n.Level > 0 {
				if err := visit(ent.Child, ent.ChildVKey, int(n.Level)-1, chunk); err != nil {
					return err
				}
				continue
			}
			if err := e.walkChunk(coder, n, ent, *chunk, stripe); err != nil {
				return err
			}
			*chunk++
		}
		return nil
	}
	chunk := 0
	return visit(vc.Root(), vc.Key(), -1, &chunk)
}

// walkChunk calls stripe with each stripe of one level-0 entry.
func (e *Engine) walkChunk(coder *erasure.Coder, n *format.Node, ent format.Entry, chunk int, stripe func(Stripe) error) error {
	lay := coder.Layout(ent.SealedLen)
	if len(ent.Shards) != len(lay)*coder.N() {
		return fmt.Errorf("%w: chunk %d names %d shards for %d stripes", ErrCorrupt, chunk, len(ent.Shards), len(lay))
	}
	for si, l := range lay {
		s := Stripe{Chunk: chunk, Index: si, K: n.K, M: n.M, ShardSize: l.ShardSize, Hash: shardHash(n),
			Shards: ent.Shards[si*coder.N() : (si+1)*coder.N()], Hints: make([][]byte, coder.N())}
		for i := range s.Hints {
			if h := int(ent.Hints[si*coder.N()+i]); h != format.NoHint && h < len(n.Peers) {
				s.Hints[i] = n.Peers[h]
			}
		}
		if err := stripe(s); err != nil {
			return err
		}
	}
	return nil
}
