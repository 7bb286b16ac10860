package engine

import (
	"context"

	"github.com/umbra-store/umbra/internal/format"
	"github.com/umbra-store/umbra/internal/seal"
	"github.com/umbra-store/umbra/keyring"
)

// priorFor returns the reusable chunks of o.Prior (nil: none).
func (e *Engine) priorFor(ctx context.Context, o PutOptions, k, m int) map[[32]byte]placed {
	if o.Prior == nil || o.RandomKey {
		return nil
	}
	return e.priorChunks(ctx, *o.Prior, k, m)
}

// reuse returns the prior placement of chunk data, if it has one.
func (e *Engine) reuse(prior map[[32]byte]placed, data []byte) (placed, bool) {
	if prior == nil {
		return placed{}, false
	}
	key := seal.ConvergentKey(e.secrets.ConvergenceKey(), data)
	p, ok := prior[*key.Array()]
	if !ok || p.ent.Size != uint64(len(data)) || p.ent.SealedLen != seal.SealedLen(len(data)) {
		return placed{}, false
	}
	p.ent.Hints = append([]uint16(nil), p.ent.Hints...) // each use hints afresh
	return p, true
}

// maxPriorChunks bounds the chunks of a prior version a put remembers.
const maxPriorChunks = 1 << 16

// priorChunks reads the chunk entries of a file stored before with the
// same shards, by chunk key, each with the holders its manifest names. A
// put with convergent keys reuses them: a chunk whose key is there was
// sealed, coded and placed before, and would be again byte for byte (its
// key is HMAC(this node's secret, BLAKE3(chunk)), and sealing and coding
// are deterministic). Nil when the prior cannot be read, or has other
// shards: the put then stores every chunk.
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
