package placement

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/umbra-store/umbra/blockstore"
	"github.com/umbra-store/umbra/dht"
	"github.com/umbra-store/umbra/internal/kind"
	"github.com/umbra-store/umbra/internal/shard"
	"github.com/umbra-store/umbra/internal/xfer"
	"github.com/umbra-store/umbra/keyring"
)

// ErrFewPeers is returned by New when a put would have fewer than k+1
// distinct holders and the caller did not allow it.
var ErrFewPeers = kind.New(kind.FewPeers, "placement: too few peers to spread the shards")

// Timeouts.
const (
	storeTimeout = 10 * time.Second // one STORE of a shard or manifest replica
	syncTimeout  = 2 * time.Minute  // one SYNC at a durability point
)

// Remote stores blocks on peers: the shard protocol's client.
type Remote interface {
	Store(ctx context.Context, p peer.ID, b blocks.Block, lease shard.Lease) error
	Renew(ctx context.Context, p peer.ID, c cid.Cid, secret [32]byte, expiry uint64) error
	Sync(ctx context.Context, p peer.ID) error
}

// Local is this node's block store (with its quota).
type Local interface {
	PutManyDeferred(ctx context.Context, bs []blocks.Block) error
	Sync(ctx context.Context) error
	PutLeased(ctx context.Context, bs []blocks.Block, ls []blockstore.Lease, by blockstore.LeaseBy) error
	AddLease(ctx context.Context, c cid.Cid, l blockstore.Lease, by blockstore.LeaseBy) error
}

// Announcer announces blocks this node holds: the DHT.
type Announcer interface{ Announce(c cid.Cid) }

var (
	_ Remote    = (*shard.Client)(nil)
	_ Local     = (*blockstore.Store)(nil)
	_ Announcer = (*dht.DHT)(nil)
)

// Session places the blocks of one put.
type Session struct {
	self   peer.ID
	peers  []peer.ID // candidates, taken when the put starts; self among them
	remote Remote
	local  Local
	ann    Announcer
	log    *slog.Logger
	leases keyring.Key
	expiry uint64 // every lease's; 0: none (as long as peers allow)

	mu       sync.Mutex
	touched  map[peer.ID]bool   // hold shards: their SYNC must succeed
	replicas map[peer.ID]bool   // hold only manifest copies: SYNC is best effort
	excluded map[peer.ID]string // peers that refused or failed during this put
	warnings []string
}

// Deps are what a session stores through.
type Deps struct {
	Self   peer.ID
	Remote Remote
	Local  Local
	Ann    Announcer
	Log    *slog.Logger
	// LeaseKey derives each lease's renew secret (keyring.RenewSecret).
	LeaseKey keyring.Key
}

// New starts a session placing k+m shards per stripe on peers (this node,
// d.Self, is added), each block under a lease until expiry (unix seconds;
// 0: none). Fewer than k+1 candidates is ErrFewPeers unless allowFewer;
// fewer than k+m is a warning.
func New(d Deps, peers []peer.ID, k, m int, allowFewer bool, expiry uint64) (*Session, error) {
	peers = append(append([]peer.ID(nil), peers...), d.Self)
	if len(peers) < k+1 && !allowFewer {
		return nil, fmt.Errorf("%w: %d peers (this node included) for %d+%d shards; a stripe needs at least %d so that losing one peer loses no data (connect more peers, or pass --allow-fewer-peers)",
			ErrFewPeers, len(peers), k, m, k+1)
	}
	s := &Session{self: d.Self, peers: peers, remote: d.Remote, local: d.Local, ann: d.Ann, log: d.Log,
		leases: d.LeaseKey, expiry: expiry, touched: map[peer.ID]bool{}, replicas: map[peer.ID]bool{}, excluded: map[peer.ID]string{}}
	if len(peers) < k+m {
		s.warn(fmt.Sprintf("only %d peers for %d+%d shards: some peers hold two shards of a stripe", len(peers), k, m))
	}
	return s, nil
}

func (s *Session) warn(w string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, x := range s.warnings {
		if x == w {
			return
		}
	}
	s.warnings = append(s.warnings, w)
	s.log.Warn(w)
}

// Warnings are what the user should know about the put (shards doubled up
// on peers, say).
func (s *Session) Warnings() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.warnings...)
}

func (s *Session) exclude(p peer.ID, why string) {
	s.mu.Lock()
	s.excluded[p] = why
	s.mu.Unlock()
	s.log.Info("placing elsewhere", "peer", p.ShortString(), "why", why)
}

func (s *Session) isExcluded(p peer.ID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.excluded[p]
	return ok
}

func (s *Session) why() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var parts []string
	for p, w := range s.excluded {
		parts = append(parts, p.ShortString()+": "+w)
	}
	sort.Strings(parts)
	if len(parts) == 0 {
		return "no peers"
	}
	return fmt.Sprint(parts)
}

func describeStoreErr(err error) string {
	if errors.Is(err, blockstore.ErrFull) {
		return "full"
	}
	return err.Error()
}

// storeOn stores b on p: locally for this node, else over the shard
// protocol.
func (s *Session) storeOn(ctx context.Context, p peer.ID, b blocks.Block) error {
	if p == s.self {
		if err := s.storeHere(ctx, b); err != nil {
			return err
		}
		s.ann.Announce(b.Cid())
	} else {
		sctx, cancel := context.WithTimeout(ctx, storeTimeout)
		defer cancel()
		if err := s.remote.Store(sctx, p, b, s.lease(b.Cid(), p)); err != nil {
			return err
		}
		xfer.From(ctx).ToPeer(p.String(), len(b.RawData()))
	}
	xfer.From(ctx).Stored()
	s.mu.Lock()
	s.touched[p] = true
	s.mu.Unlock()
	return nil
}

// lease is this session's lease on block c at peer p.
func (s *Session) lease(c cid.Cid, p peer.ID) shard.Lease {
	return shard.Lease{Expiry: s.expiry, Hash: keyring.RenewHash(keyring.RenewSecret(s.leases, c.Hash(), []byte(p)))}
}

// Adopt gives this session's lease to a stripe's shards where a manifest
// says they are held already (a prior version's chunk), as PlaceStripe's
// STOREs would: a RENEW to each holder, which adds the lease to a block it
// holds and answers not found otherwise. It reports whether every holder
// took it; if not, the caller places the stripe anew. Holders are a
// manifest's hints, so maybe another writer's: only this session's own
// candidates are asked (a peer the hints chose could answer OK and hold
// nothing; a candidate's answer is trusted as its STORE's would be), and
// what this put relies on carries its own lease.
func (s *Session) Adopt(ctx context.Context, shards []blocks.Block, holders [][]byte) bool {
	if len(holders) != len(shards) || s.expired() != nil {
		return false
	}
	// No peer may hold more of the stripe than PlaceStripe would give it
	// (one where there are enough candidates): the hints may be a
	// co-writer's, naming one peer for every shard.
	most := (len(shards) + len(s.peers) - 1) / len(s.peers)
	count := map[peer.ID]int{}
	ps := make([]peer.ID, len(shards))
	for i := range shards {
		p, err := peer.IDFromBytes(holders[i])
		if err != nil || !slices.Contains(s.peers, p) || s.isExcluded(p) {
			return false
		}
		if count[p]++; count[p] > most {
			return false
		}
		ps[i] = p
	}
	ok := make([]bool, len(shards))
	var wg sync.WaitGroup
	for i, b := range shards {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok[i] = s.adoptOn(ctx, ps[i], b.Cid())
		}()
	}
	wg.Wait()
	for _, o := range ok {
		if !o {
			return false
		}
	}
	return true
}

// adoptOn gives this session's lease to block c held by p.
func (s *Session) adoptOn(ctx context.Context, p peer.ID, c cid.Cid) bool {
	if p == s.self {
		if s.local.AddLease(ctx, c, s.lease(c, p), s.localBy()) != nil {
			return false
		}
	} else {
		sctx, cancel := context.WithTimeout(ctx, storeTimeout)
		defer cancel()
		if err := s.remote.Renew(sctx, p, c, keyring.RenewSecret(s.leases, c.Hash(), []byte(p)), s.expiry); err != nil {
			// An answer (not found, full) is about this block; no answer
			// (a dead or hung peer) would cost every chunk naming it a
			// timeout, and then the STORE too.
			var re *shard.RemoteError
			if !errors.As(err, &re) && ctx.Err() == nil {
				s.exclude(p, describeStoreErr(err))
			}
			return false
		}
	}
	s.mu.Lock()
	s.touched[p] = true // the lease is durable after its SYNC (Flush)
	s.mu.Unlock()
	return true
}

// storeHere stores b in this node's store under this node's lease: until
// the put's expiry, or for ever (a lease only this node can end).
func (s *Session) storeHere(ctx context.Context, b blocks.Block) error {
	return s.local.PutLeased(ctx, []blocks.Block{b}, []blockstore.Lease{s.lease(b.Cid(), s.self)}, s.localBy())
}

// localBy is the rule this node's own leases are given under: until the
// put's expiry, or for ever (a lease only this node can end).
func (s *Session) localBy() blockstore.LeaseBy {
	if s.expiry == 0 {
		return blockstore.Forever
	}
	return blockstore.ByStore
}

// ErrExpiredDuringPut is a put whose own expiry passed before it stored
// everything: peers refuse a lease already over.
var ErrExpiredDuringPut = kind.New(kind.Usage, "placement: the put's expiry passed before it finished: give --expire more time")

// expired fails once the put's expiry has passed.
func (s *Session) expired() error {
	if s.expiry != 0 && uint64(time.Now().Unix()) >= s.expiry {
		return ErrExpiredDuringPut
	}
	return nil
}

// PlaceStripe stores one stripe's shards on distinct peers where it can,
// closest by XOR first, and returns each shard's holder.
func (s *Session) PlaceStripe(ctx context.Context, shards []blocks.Block) ([][]byte, error) {
	if err := s.expired(); err != nil {
		return nil, err
	}
	holders := make([][]byte, len(shards))
	var mu sync.Mutex
	used := map[peer.ID]int{}
	claim := func(order []peer.ID) (peer.ID, bool) {
		mu.Lock()
		defer mu.Unlock()
		// First a peer with no shard of this stripe, then the least loaded.
		best, bestN := peer.ID(""), -1
		for _, p := range order {
			if s.isExcluded(p) {
				continue
			}
			if used[p] == 0 {
				used[p]++
				return p, true
			}
			if bestN < 0 || used[p] < bestN {
				best, bestN = p, used[p]
			}
		}
		if bestN < 0 {
			return "", false
		}
		used[best]++
		return best, true
	}
	errs := make([]error, len(shards))
	var wg sync.WaitGroup
	for i, b := range shards {
		wg.Add(1)
		go func() {
			defer wg.Done()
			order := dht.Rank(s.peers, b.Cid())
			for {
				p, ok := claim(order)
				if !ok {
					errs[i] = fmt.Errorf("placement: no peer accepted shard %s (%s)", blockstore.Short(b.Cid()), s.why())
					return
				}
				err := s.storeOn(ctx, p, b)
				if err == nil {
					holders[i] = []byte(p)
					return
				}
				if ctx.Err() != nil {
					errs[i] = ctx.Err()
					return
				}
				s.exclude(p, describeStoreErr(err))
				mu.Lock()
				used[p]--
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return holders, nil
}

// Replicate stores a manifest block on every candidate peer (this node
// always): manifest blocks are small, and a reader needs the root first.
// Only this node's copy is required; the others are best effort.
func (s *Session) Replicate(ctx context.Context, b blocks.Block) error {
	if err := s.expired(); err != nil {
		return err
	}
	if err := s.storeHere(ctx, b); err != nil {
		return err
	}
	s.mu.Lock()
	s.touched[s.self] = true
	s.mu.Unlock()
	s.ann.Announce(b.Cid())
	var wg sync.WaitGroup
	for _, p := range dht.Rank(s.peers, b.Cid()) {
		if p == s.self || s.isExcluded(p) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sctx, cancel := context.WithTimeout(ctx, storeTimeout)
			defer cancel()
			if err := s.remote.Store(sctx, p, b, s.lease(b.Cid(), p)); err != nil {
				s.log.Info("manifest replica not stored", "peer", p.ShortString(), "err", err)
				return
			}
			s.mu.Lock()
			s.replicas[p] = true
			s.mu.Unlock()
		}()
	}
	wg.Wait()
	return nil
}

// Flush makes every block placed in this session durable on its holder: a
// SYNC to every peer that took a block, and this node's own store synced.
// A shard holder that fails fails the flush; a replica holder is logged.
func (s *Session) Flush(ctx context.Context) error {
	s.mu.Lock()
	var peers []peer.ID
	required := map[peer.ID]bool{}
	for p := range s.touched {
		peers = append(peers, p)
		required[p] = true
	}
	for p := range s.replicas {
		if !required[p] {
			peers = append(peers, p)
		}
	}
	s.mu.Unlock()
	errs := make([]error, len(peers))
	var wg sync.WaitGroup
	for i, p := range peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if p == s.self {
				errs[i] = s.local.Sync(ctx)
				return
			}
			sctx, cancel := context.WithTimeout(ctx, syncTimeout)
			defer cancel()
			err := s.remote.Sync(sctx, p)
			switch {
			case err == nil:
			case required[p]:
				errs[i] = fmt.Errorf("placement: peer %s did not confirm its shards durable: %w", p.ShortString(), err)
			default:
				s.log.Info("manifest replica not confirmed durable", "peer", p.ShortString(), "err", err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
