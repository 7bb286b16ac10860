package network

import (
	"context"
	"sort"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/umbra-store/umbra/blockstore"
	"github.com/umbra-store/umbra/erasure"
	"github.com/umbra-store/umbra/internal/engine"
	"github.com/umbra-store/umbra/internal/shard"
)

// stripeResult is what one stripe's check (and repair) found and did.
type stripeResult struct {
	holders  [][]peer.ID // per shard
	alive    int         // shards with a holder
	distinct int         // shards with a holder of their own
	repaired int
	renewed  int
	bad      map[peer.ID]bool
}

func (m *Maintainer) stripe(ctx context.Context, peers []peer.ID, s engine.Stripe, verify, repair bool) (stripeResult, error) {
	r := stripeResult{holders: make([][]peer.ID, len(s.Shards)), bad: map[peer.ID]bool{}}
	mode := probeHas
	switch {
	case verify:
		mode = probeVerify
	case repair:
		mode = probeRenew // held is answered by renewing
	}
	known := map[peer.ID]bool{}
	for _, p := range peers {
		known[p] = true
	}
	asked := make([]map[peer.ID]bool, len(s.Shards))
	ask := func(i int, p peer.ID) {
		asked[i][p] = true
		held, bad, renewed := m.probe(ctx, p, s.CID(i), s.ShardSize, mode)
		if bad {
			r.bad[p] = true
		}
		if held {
			r.holders[i] = append(r.holders[i], p)
		}
		if renewed {
			r.renewed++
		}
	}
	// First where each shard should be: its hinted holder. Only a shard
	// not found there is asked of every other peer.
	for i := range s.Shards {
		asked[i] = map[peer.ID]bool{}
		if h := peer.ID(s.Hints[i]); h != "" && known[h] {
			ask(i, h)
			if len(r.holders[i]) == 0 {
				// It acknowledged this shard and is up: it dropped it.
				r.bad[h] = true
			}
		}
	}
	own := assign(r.holders)
	for i := range s.Shards {
		if own[i] != "" {
			continue
		}
		for _, p := range peers {
			if !asked[i][p] {
				ask(i, p)
			}
		}
	}
	own = assign(r.holders)
	for i := range s.Shards {
		if len(r.holders[i]) > 0 {
			r.alive++
		}
		if own[i] != "" {
			r.distinct++
		}
	}
	if repair && r.distinct < len(s.Shards) && r.alive >= s.K {
		n, err := m.rebuild(ctx, peers, s, &r, own)
		r.repaired = n
		if err != nil {
			return r, err
		}
	}
	return r, nil
}

// assign gives each shard a holder no other shard is given, where it can
// (the shards with fewest holders first), and returns it per shard ("":
// none of its own).
func assign(holders [][]peer.ID) []peer.ID {
	order := make([]int, len(holders))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return len(holders[order[a]]) < len(holders[order[b]]) })
	used := map[peer.ID]bool{}
	own := make([]peer.ID, len(holders))
	for _, i := range order {
		for _, p := range holders[i] {
			if !used[p] {
				used[p], own[i] = true, p
				break
			}
		}
	}
	return own
}

// rebuild fetches k shards of the stripe, rebuilds the others, and places
// each shard without a holder of its own on a live peer that holds no
// shard of the stripe. It returns how many it placed.
func (m *Maintainer) rebuild(ctx context.Context, peers []peer.ID, s engine.Stripe, r *stripeResult, own []peer.ID) (int, error) {
	coder, err := erasure.New(s.K, s.M)
	if err != nil {
		return 0, err
	}
	shards := make([][]byte, len(s.Shards))
	got := 0
	for i, hs := range r.holders {
		for _, p := range hs {
			if got == s.K {
				break
			}
			if data := m.fetch(ctx, p, s, i); data != nil {
				shards[i] = data
				got++
				break
			}
		}
	}
	if got < s.K {
		return 0, nil // fewer than k could be fetched: reported as found
	}
	if err := coder.Rebuild(shards, s.K*s.ShardSize); err != nil {
		return 0, err
	}
	busy := map[peer.ID]bool{}
	for _, hs := range r.holders {
		for _, p := range hs {
			busy[p] = true
		}
	}
	placed := 0
	for i, p := range own {
		if p != "" {
			continue
		}
		b, d := blockstore.NewBlockHash(s.Hash, shards[i])
		if d != s.Shards[i] {
			continue // rebuilt bytes disagree with the manifest: leave it
		}
		for _, t := range rank(peers, b.Cid()) {
			if busy[t] || r.bad[t] {
				continue
			}
			if err := m.store(ctx, t, b); err != nil {
				r.bad[t] = true
				continue
			}
			// Acknowledged is not kept: a peer that drops what it took
			// would be chosen again at every run.
			if held, _ := m.holds(ctx, t, b.Cid(), s.ShardSize, true); !held {
				r.bad[t] = true
				continue
			}
			busy[t] = true
			if len(r.holders[i]) == 0 {
				r.alive++
			}
			r.holders[i] = append(r.holders[i], t)
			placed++
			r.distinct++
			break
		}
	}
	return placed, nil
}

// fetch returns shard i of s from p, checked against its digest, or nil.
func (m *Maintainer) fetch(ctx context.Context, p peer.ID, s engine.Stripe, i int) []byte {
	c := s.CID(i)
	var data []byte
	if p == m.net.h.ID() {
		b, err := m.local.Get(ctx, c)
		if err != nil {
			return nil
		}
		data = b.RawData()
	} else {
		d, err := m.client.Fetch(ctx, p, c, s.ShardSize)
		if err != nil {
			return nil
		}
		data = append([]byte(nil), d...)
		shard.Release(d)
	}
	if len(data) != s.ShardSize || blockstore.Verify(c, data) != nil {
		return nil
	}
	return data
}

// nodeResult is what one manifest node's check (and repair) found and did.
type nodeResult struct {
	held, want      int
	stored, renewed int
}

// node checks who holds a manifest node block; with repair it renews this
// node's lease on each copy (the renewal answers whether it is held) and
// stores a copy on every live peer lacking one (a put sends one to every
// peer).
func (m *Maintainer) node(ctx context.Context, peers []peer.ID, digest [32]byte, block []byte, copies int, repair bool) (nodeResult, error) {
	c := blockstore.CIDOf(digest)
	r := nodeResult{want: min(copies, len(peers))}
	mode := probeHas
	if repair {
		mode = probeRenew
	}
	var lacking []peer.ID
	for _, p := range peers {
		held, _, renewed := m.probe(ctx, p, c, len(block), mode)
		if renewed {
			r.renewed++
		}
		if held {
			r.held++
		} else {
			lacking = append(lacking, p)
		}
	}
	if !repair {
		return r, nil
	}
	b, _ := blockstore.NewBlock(block)
	for _, p := range lacking {
		if m.store(ctx, p, b) == nil {
			r.stored++
			r.held++
		}
	}
	return r, nil
}
