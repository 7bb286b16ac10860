package network

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/sync/errgroup"

	"github.com/umbra-store/umbra/blockstore"
	"github.com/umbra-store/umbra/dht"
	"github.com/umbra-store/umbra/internal/engine"
	"github.com/umbra-store/umbra/internal/shard"
	"github.com/umbra-store/umbra/keyring"
)

// Check and repair need only a file's verify capability: the manifest's
// verify parts name every shard (digest, size, hinted holder), and
// Reed-Solomon rebuilds ciphertext without a key. A shard's holders are
// found by asking HAS of its hinted peer and of every connected shard peer
// (and this node's store): hints name where a put placed shards, not
// where a repair moved them, and a DHT announcement may lag.

// Maintainer checks and repairs files for this node.
type Maintainer struct {
	net    *Net
	eng    *engine.Engine
	client *shard.Client
	local  *blockstore.Store
	leases keyring.Key
	length time.Duration // leases renewed or placed run this long; 0: none
}

// NewMaintainer returns a maintainer storing and renewing with this
// node's lease key, leases of length (0: none).
func NewMaintainer(n *Net, e *engine.Engine, c *shard.Client, local *blockstore.Store, leaseKey keyring.Key, length time.Duration) *Maintainer {
	return &Maintainer{net: n, eng: e, client: c, local: local, leases: leaseKey, length: length}
}

// Report is what a check (and a repair) found and did.
type Report struct {
	Stripes    int            `json:"stripes"`
	Healthy    int            `json:"healthy"`  // k+m shards on k+m distinct live peers
	Degraded   int            `json:"degraded"` // fewer, but at least k
	Lost       int            `json:"lost"`     // fewer than k: the chunk cannot be read
	Nodes      int            `json:"nodes"`    // manifest node blocks
	NodesShort int            `json:"nodes_short"`
	Problems   []StripeReport `json:"problems,omitempty"` // stripes not healthy (the first 100)
	BadPeers   []string       `json:"bad_peers,omitempty"`
	Repaired   int            `json:"repaired"`        // shards rebuilt and placed
	Replicated int            `json:"replicated"`      // manifest node copies stored
	Renewed    int            `json:"renewed"`         // leases renewed
	Status     string         `json:"status"`          // healthy, degraded or lost
	Files      int            `json:"files,omitempty"` // a deep check: the files and snapshots checked
}

// Merge adds o (another file of a tree) to r.
func (r *Report) Merge(o Report) {
	r.Stripes += o.Stripes
	r.Healthy += o.Healthy
	r.Degraded += o.Degraded
	r.Lost += o.Lost
	r.Nodes += o.Nodes
	r.NodesShort += o.NodesShort
	r.Repaired += o.Repaired
	r.Replicated += o.Replicated
	r.Renewed += o.Renewed
	r.Files++
	for _, p := range o.Problems {
		if len(r.Problems) < 100 {
			r.Problems = append(r.Problems, p)
		}
	}
	for _, p := range o.BadPeers {
		if !slices.Contains(r.BadPeers, p) {
			r.BadPeers = append(r.BadPeers, p)
		}
	}
	rank := map[string]int{"": 0, "healthy": 1, "degraded": 2, "lost": 3}
	if rank[o.Status] > rank[r.Status] {
		r.Status = o.Status
	}
}

// StripeReport is one stripe that is not healthy.
type StripeReport struct {
	Chunk   int      `json:"chunk"`
	Stripe  int      `json:"stripe"`
	Alive   int      `json:"alive"`   // shards held somewhere
	Need    int      `json:"need"`    // k
	Holders []string `json:"holders"` // per shard, its holders (short IDs)
}

// maintStreams bounds the requests a check or repair has in flight.
const maintStreams = 16

// Check reports how many distinct shards of each stripe of vc's file are
// held, and where; with verify each holder's copy is fetched and hashed.
func (m *Maintainer) Check(ctx context.Context, vc keyring.VerifyCap, verify bool) (Report, error) {
	return m.run(ctx, vc, verify, false)
}

// Repair checks vc's file, each copy probed by renewing (or adding) this
// node's lease on it, rebuilds every missing shard from any k of its
// stripe and places it on a live peer holding no other shard of that
// stripe, and stores manifest node copies where they are short.
func (m *Maintainer) Repair(ctx context.Context, vc keyring.VerifyCap) (Report, error) {
	return m.run(ctx, vc, false, true)
}

func (m *Maintainer) run(ctx context.Context, vc keyring.VerifyCap, verify, repair bool) (Report, error) {
	var r Report
	var mu sync.Mutex
	bad := map[peer.ID]bool{}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(maintStreams / 4)
	peers := m.candidates()
	seen := map[string]bool{} // stripes by hash function and shard CIDs
	err := m.eng.Walk(ctx, vc, func(digest [32]byte, block []byte, copies int) error {
		g.Go(func() error {
			n, err := m.node(gctx, peers, digest, block, copies, repair)
			mu.Lock()
			defer mu.Unlock()
			r.Nodes++
			r.Replicated += n.stored
			r.Renewed += n.renewed
			if n.held < n.want {
				r.NodesShort++
			}
			return err
		})
		return nil
	}, func(s engine.Stripe) error {
		id := stripeID(s)
		if seen[id] {
			return nil // a stripe named twice (a crafted manifest) is checked once
		}
		seen[id] = true
		g.Go(func() error {
			sr, err := m.stripe(gctx, peers, s, verify, repair)
			mu.Lock()
			defer mu.Unlock()
			r.add(s, sr, bad)
			return err
		})
		return nil
	})
	if gerr := g.Wait(); err == nil {
		err = gerr
	}
	for p := range bad {
		r.BadPeers = append(r.BadPeers, p.String())
	}
	r.Status = "healthy"
	switch {
	case r.Lost > 0:
		r.Status = "lost"
	case r.Degraded > 0 || r.NodesShort > 0:
		r.Status = "degraded"
	}
	return r, err
}

// candidates are the peers asked for every block: this node and the
// connected shard peers.
func (m *Maintainer) candidates() []peer.ID {
	return append([]peer.ID{m.net.h.ID()}, m.net.ShardPeers()...)
}

// holds reports whether p holds c: this node's store, or HAS (and, with
// verify, FETCH and a hash of what comes).
func (m *Maintainer) holds(ctx context.Context, p peer.ID, c cid.Cid, size int, verify bool) (held, bad bool) {
	if p == m.net.h.ID() {
		if !verify {
			ok, _ := m.local.Has(ctx, c)
			return ok, false
		}
		b, err := m.local.Get(ctx, c)
		if err != nil {
			return false, false
		}
		return blockstore.Verify(c, b.RawData()) == nil, false
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if !verify {
		ok, _ := m.client.Has(sctx, p, c)
		return ok, false
	}
	ok, _ := m.client.Has(sctx, p, c)
	if !ok {
		return false, false
	}
	data, err := m.client.Fetch(sctx, p, c, size)
	if err != nil || blockstore.Verify(c, data) != nil {
		return false, true // says it holds the block, and does not serve it
	}
	shard.Release(data)
	return true, false
}

// lease is this node's lease on block c at p.
func (m *Maintainer) lease(c cid.Cid, p peer.ID) (shard.Lease, [32]byte) {
	secret := keyring.RenewSecret(m.leases, c.Hash(), []byte(p))
	var exp uint64
	if m.length > 0 {
		exp = uint64(time.Now().Add(m.length).Unix())
	}
	return shard.Lease{Expiry: exp, Hash: keyring.RenewHash(secret)}, secret
}

// store places block b on p under this node's lease, durably.
func (m *Maintainer) store(ctx context.Context, p peer.ID, b blocks.Block) error {
	l, _ := m.lease(b.Cid(), p)
	if p == m.net.h.ID() {
		if err := m.local.PutLeased(ctx, []blocks.Block{b}, []blockstore.Lease{l}, ownLease(l)); err != nil {
			return err
		}
		m.net.place.Ann.Announce(b.Cid())
		return m.local.Sync(ctx)
	}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := m.client.Store(sctx, p, b, l); err != nil {
		return err
	}
	return m.client.Sync(sctx, p)
}

// probeMode is how a holder is asked for a block.
type probeMode int

const (
	probeHas    probeMode = iota // HAS
	probeVerify                  // HAS, then FETCH and hash
	probeRenew                   // RENEW this node's lease: OK means held
)

// probe asks p for c as mode says: whether p holds it, whether p claimed
// it and did not serve it (verify), whether this node's lease was renewed.
func (m *Maintainer) probe(ctx context.Context, p peer.ID, c cid.Cid, size int, mode probeMode) (held, bad, renewed bool) {
	if mode != probeRenew {
		held, bad = m.holds(ctx, p, c, size, mode == probeVerify)
		return held, bad, false
	}
	l, secret := m.lease(c, p)
	if p == m.net.h.ID() {
		if ok, _ := m.local.Has(ctx, c); !ok {
			return false, false, false
		}
		return true, false, m.local.AddLease(ctx, c, l, ownLease(l)) == nil
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err := m.client.Renew(sctx, p, c, secret, l.Expiry)
	var re *shard.RemoteError
	switch {
	case err == nil:
		return true, false, true
	case errors.As(err, &re) && re.Code == shard.CodeFull:
		// Held, with every lease slot a RENEW may take filled.
		return true, false, false
	}
	return false, false, false
}

// ownLease is how this node leases its own copies: for ever without an
// expiry.
func ownLease(l shard.Lease) blockstore.LeaseBy {
	if l.Expiry == 0 {
		return blockstore.Forever
	}
	return blockstore.ByStore
}

// rank orders peers for a block: the DHT's order, so repairs of one block
// by two nodes pick the same peers.
func rank(peers []peer.ID, c cid.Cid) []peer.ID { return dht.Rank(peers, c) }

// add counts one stripe's result.
func (r *Report) add(s engine.Stripe, sr stripeResult, bad map[peer.ID]bool) {
	r.Stripes++
	r.Repaired += sr.repaired
	r.Renewed += sr.renewed
	for p := range sr.bad {
		bad[p] = true
	}
	need := s.K + s.M
	switch {
	case sr.distinct >= need:
		r.Healthy++
		return
	case sr.alive >= s.K:
		r.Degraded++
	default:
		r.Lost++
	}
	if len(r.Problems) < 100 {
		sp := StripeReport{Chunk: s.Chunk, Stripe: s.Index, Alive: sr.alive, Need: s.K}
		for _, hs := range sr.holders {
			h := ""
			for i, p := range hs {
				if i > 0 {
					h += ","
				}
				h += p.ShortString()
			}
			sp.Holders = append(sp.Holders, h)
		}
		r.Problems = append(r.Problems, sp)
	}
}

// stripeID names a stripe by its shards' function and all their digests:
// two stripes that share a first shard are still two stripes.
func stripeID(s engine.Stripe) string {
	b := make([]byte, 0, 1+32*len(s.Shards))
	b = append(b, byte(s.Hash))
	for _, d := range s.Shards {
		b = append(b, d[:]...)
	}
	return string(b)
}
