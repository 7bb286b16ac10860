package engine

import (
	"context"
	"slices"

	"github.com/umbra-store/umbra/erasure"
	"github.com/umbra-store/umbra/internal/format"
	"github.com/umbra-store/umbra/keyring"
)

// priorFor returns the reusable chunks of o.Prior (nil: none).
func (e *Engine) priorFor(ctx context.Context, o PutOptions, k, m int) map[[32]byte]placed {
	if o.Prior == nil || o.RandomKey {
		return nil
	}
	return e.priorChunks(ctx, *o.Prior, k, m)
}

// reuse returns the prior placement of a chunk sealed as ent, if the prior
// has one whose shards are the very ones ent names. The key alone is not
// enough: the prior may be another writer's (a shared folder's last
// snapshot), and a writer who read one of this node's chunk keys could
// name shards of other ciphertext under it, which the chunk's AEAD would
// accept. So the chunk is sealed and coded anyway; what reuse saves is
// placing its shards again.
func reuse(prior map[[32]byte]placed, ent format.Entry) (placed, bool) {
	p, ok := prior[*ent.Key.Array()]
	if !ok || p.ent.Size != ent.Size || p.ent.SealedLen != ent.SealedLen || !slices.Equal(p.ent.Shards, ent.Shards) {
		return placed{}, false
	}
	p.ent.Hints = append([]uint16(nil), p.ent.Hints...) // each use hints afresh
	return p, true
}

// adopt makes a reused chunk this put's own where the prior says it is:
// each stripe's holders take this put's lease (PutSession.Adopt), so that
// neither the prior's hints nor its writer's leases are relied on. An
// offline put holds the chunk here: the prior's holders are dropped from
// its hints. False: place the chunk anew.
func (e *Engine) adopt(ctx context.Context, coder *erasure.Coder, sc sealedChunk, p placed, sess PutSession) (placed, bool) {
	n := coder.N()
	if sess == nil || len(p.holders) != len(sc.bs) {
		return placed{}, false // no session: no lease to give, place it
	}
	for s := 0; s < len(sc.bs); s += n {
		if !sess.Adopt(ctx, sc.bs[s:s+n], p.holders[s:s+n]) {
			return placed{}, false
		}
	}
	if _, local := sess.(*localSession); local {
		p.holders = make([][]byte, len(sc.bs))
	}
	return p, true
}

// maxPriorChunks bounds the chunks of a prior version a put remembers.
const maxPriorChunks = 1 << 16

// priorChunks reads the chunk entries of a file stored before with the
// same shards, by chunk key, each with the holders its manifest names. A
// put with convergent keys reuses those whose shards it would write again
// byte for byte (reuse): its key is HMAC(this node's secret,
// BLAKE3(chunk)), and sealing and coding are deterministic. Nil when the
// prior cannot be read, or has other shards: the put then stores every
// chunk.
func (e *Engine) priorChunks(ctx context.Context, c keyring.ReadCap, k, m int) map[[32]byte]placed {
	root, err := e.openNode(ctx, c.Root(), c.ReadKey())
	if err != nil || root.K != k || root.M != m {
		return nil
	}
	out := map[[32]byte]placed{}
	budget := walkBudget(root.Size)
	var visit func(n *format.Node) bool
	visit = func(n *format.Node) bool {
		if n.ShardHash != format.ShardBLAKE3 {
			// Shards named by SHA-256 (version 0x02) cannot sit in the
			// version 0x03 node this put writes; their chunk keys differ
			// too.
			return false
		}
		for _, ent := range n.Entries {
			if budget--; budget < 0 || len(out) >= maxPriorChunks {
				return false
			}
			if n.Level > 0 {
				child, err := e.openNode(ctx, ent.Child, ent.Key)
				if err != nil || int(child.Level) != int(n.Level)-1 || child.K != k || child.M != m || !visit(child) {
					return false
				}
				continue
			}
			p := placed{ent: ent, holders: make([][]byte, len(ent.Hints))}
			p.ent.Hints = make([]uint16, len(ent.Hints))
			for i, h := range ent.Hints {
				p.ent.Hints[i] = format.NoHint
				if int(h) < len(n.Peers) {
					p.holders[i] = n.Peers[h]
				}
			}
			out[*ent.Key.Array()] = p
		}
		return true
	}
	if !visit(root) {
		return nil
	}
	return out
}
