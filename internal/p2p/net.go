package p2p

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/boxo/bitswap"
	bsnet "github.com/ipfs/boxo/bitswap/network/bsnet"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/umbra-store/umbra/blockstore"
	"github.com/umbra-store/umbra/internal/engine"
	"github.com/umbra-store/umbra/internal/wire"
)

// ErrFewPeers is returned when a put would have fewer than k+1 distinct
// holders and the caller did not allow it.
var ErrFewPeers = errors.New("p2p: too few peers to spread the shards")

// Timeouts, in the order retrieval tries sources.
const (
	fetchTimeout   = 10 * time.Second      // one shard from one peer
	findTimeout    = 5 * time.Second       // a DHT provider search
	badPeerPenalty = 10 * time.Minute      // how long a peer that served bad bytes is avoided
	downPenalty    = 30 * time.Second      // how long an unreachable peer is skipped
	dialTimeout    = time.Second           // to a holder we are not connected to
	bitswapTimeout = 5 * time.Second       // the last resort: bitswap asks every connected peer
	announceQuiet  = time.Second           // announcing waits this long after the last store
	announceMax    = 10 * time.Second      // … but never longer than this for one announcement
	announcePace   = 40 * time.Millisecond // per announcer (2): at most 50 provides/s
	providers      = 8                     // providers asked for per CID
	// maxPeerNotes bounds the bad and down peer lists: hints can name any
	// number of peer IDs, and an entry is kept only while it matters.
	maxPeerNotes = 4096
)

// Net places shards on peers and fetches them back; it implements
// engine.Network.
type Net struct {
	h      host.Host
	dht    *dht.IpfsDHT
	store  *blockstore.Store
	svc    *Service
	client *Client
	log    *slog.Logger

	mu   sync.Mutex
	bad  map[peer.ID]time.Time // served bytes that failed their CID
	down map[peer.ID]time.Time // could not be reached
	// dials in flight, closed when done: one per peer at a time
	dialing map[peer.ID]chan struct{}

	provideQ  chan cid.Cid
	lastStore atomic.Int64 // unix nanoseconds of the last block stored here
	// quiet and maxWait are announceQuiet and announceMax (tests shorten
	// them).
	quiet, maxWait time.Duration

	bitswap *bitswap.Bitswap // the generic pull path, last resort
}

// NewBitswap starts boxo's bitswap over the same host and block store, with
// the DHT as provider finder. It announces nothing: holders announce what
// they store.
func NewBitswap(ctx context.Context, h host.Host, d *dht.IpfsDHT, store *blockstore.Store) *bitswap.Bitswap {
	return bitswap.New(ctx, bsnet.NewFromIpfsHost(h), d, store,
		bitswap.ProviderSearchDelay(200*time.Millisecond),
		bitswap.WithWantHaveReplaceSize(4<<20), // shards ≤ 2 MiB: send blocks, not HAVEs
	)
}

// SetBitswap adds bitswap as the last retrieval path.
func (n *Net) SetBitswap(b *bitswap.Bitswap) { n.bitswap = b }

var _ engine.Network = (*Net)(nil)

// NewDHT starts the Kademlia DHT: /umbra prefix, server mode, records kept
// in the node's Pebble database.
func NewDHT(ctx context.Context, h host.Host, store *blockstore.Store) (*dht.IpfsDHT, error) {
	d, err := dht.New(h,
		dht.ProtocolPrefix("/umbra"),
		dht.Mode(dht.ModeServer),
		dht.Datastore(store.Datastore()),
	)
	if err != nil {
		return nil, fmt.Errorf("p2p: start DHT: %w", err)
	}
	return d, nil
}

// NewNet ties host, DHT, store and shard service together and starts the
// announcer.
func NewNet(ctx context.Context, h host.Host, d *dht.IpfsDHT, store *blockstore.Store, svc *Service, log *slog.Logger) *Net {
	n := &Net{h: h, dht: d, store: store, svc: svc, client: NewClient(h), log: log,
		bad: map[peer.ID]time.Time{}, down: map[peer.ID]time.Time{}, dialing: map[peer.ID]chan struct{}{}, provideQ: make(chan cid.Cid, 1<<17),
		quiet: announceQuiet, maxWait: announceMax}
	for range 2 {
		go n.announcer(ctx)
	}
	return n
}

// Announce queues a CID to be provided on the DHT. A full queue drops it;
// the periodic reannounce catches up.
func (n *Net) Announce(c cid.Cid) {
	n.lastStore.Store(time.Now().UnixNano())
	select {
	case n.provideQ <- c:
	default:
	}
}

func (n *Net) announcer(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case c := <-n.provideQ:
			// Announcing costs every node DHT round trips; it waits while
			// shards are arriving, so that it never slows a put down, and
			// catches up when the node is quiet. It waits at most maxWait:
			// a peer storing a block every second must not be able to stop
			// every announcement.
			deadline := time.Now().Add(n.maxWait)
			for {
				quietFor := time.Since(time.Unix(0, n.lastStore.Load()))
				left := time.Until(deadline)
				if quietFor >= n.quiet || left <= 0 {
					break
				}
				select {
				case <-ctx.Done():
					return
				case <-time.After(min(n.quiet-quietFor, left)):
				}
			}
			pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			if err := n.dht.Provide(pctx, c, true); err != nil && ctx.Err() == nil {
				n.log.Debug("provide failed", "cid", blockstore.Short(c), "err", err)
			}
			cancel()
			// Each provide is a DHT lookup plus ADD_PROVIDER round trips on
			// other nodes: pace them so that catching up never starves
			// transfers.
			select {
			case <-ctx.Done():
				return
			case <-time.After(announcePace):
			}
		}
	}
}

// Reannounce provides every stored block again, every interval, so provider
// records never lapse (kad-dht keeps them 48 h).
func (n *Net) Reannounce(ctx context.Context, first, interval time.Duration) {
	t := time.NewTimer(first)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ch, err := n.store.AllKeysChan(ctx)
		if err == nil {
			for c := range ch {
				select {
				case n.provideQ <- c:
				case <-ctx.Done():
					return
				}
			}
		}
		t.Reset(interval)
	}
}

// ShardPeers returns the connected peers that speak the shard protocol.
func (n *Net) ShardPeers() []peer.ID {
	var out []peer.ID
	for _, p := range n.h.Network().Peers() {
		if n.h.Network().Connectedness(p) != network.Connected {
			continue
		}
		if ok, _ := n.h.Peerstore().SupportsProtocols(p, ShardProtocol); len(ok) == 0 {
			continue
		}
		out = append(out, p)
	}
	return out
}

func (n *Net) isBad(p peer.ID) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if t, ok := n.bad[p]; ok && time.Since(t) < badPeerPenalty {
		return true
	}
	t, ok := n.down[p]
	return ok && time.Since(t) < downPenalty
}

// connect reports whether p is connected, dialling it if not. A holder we
// are not connected to gets a short dial (dialTimeout), one per peer at a
// time. Without wait the answer is at once: the dial goes on in the
// background, and a shallow fetch moves on to parity rather than hold up
// the read (a killed peer's TCP port refuses at once, but its QUIC address
// answers nothing until the dial times out).
func (n *Net) connect(ctx context.Context, p peer.ID, wait bool) bool {
	if n.h.Network().Connectedness(p) == network.Connected {
		return true
	}
	n.mu.Lock()
	done, running := n.dialing[p]
	if !running {
		done = make(chan struct{})
		n.dialing[p] = done
		go func() {
			dctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
			err := n.h.Connect(dctx, peer.AddrInfo{ID: p})
			cancel()
			if err != nil {
				n.markDown(p)
			}
			n.mu.Lock()
			delete(n.dialing, p)
			n.mu.Unlock()
			close(done)
		}()
	}
	n.mu.Unlock()
	if !wait {
		return false
	}
	select {
	case <-done:
	case <-ctx.Done():
		return false
	}
	return n.h.Network().Connectedness(p) == network.Connected
}

// markDown notes a peer that could not be reached.
func (n *Net) markDown(p peer.ID) {
	n.mu.Lock()
	note(n.down, p, downPenalty)
	n.mu.Unlock()
}

func (n *Net) markBad(p peer.ID, why string) {
	n.mu.Lock()
	note(n.bad, p, badPeerPenalty)
	n.mu.Unlock()
	n.log.Warn("avoiding peer", "peer", p.ShortString(), "why", why)
}

// note records p in a peer list whose entries matter for penalty, keeping
// the list at most maxPeerNotes long: expired entries go first, then the
// oldest. Called with n.mu held.
func note(m map[peer.ID]time.Time, p peer.ID, penalty time.Duration) {
	now := time.Now()
	if _, ok := m[p]; !ok && len(m) >= maxPeerNotes {
		var oldest peer.ID
		var at time.Time
		for q, t := range m {
			if now.Sub(t) >= penalty {
				delete(m, q)
			} else if oldest == "" || t.Before(at) {
				oldest, at = q, t
			}
		}
		if len(m) >= maxPeerNotes {
			delete(m, oldest)
		}
	}
	m[p] = now
}

// rank orders peers by XOR distance between SHA-256(peer ID) and the
// block's digest: the same block goes to the same peers from any uploader.
func rank(peers []peer.ID, c cid.Cid) []peer.ID {
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
	sort.Slice(s, func(i, j int) bool { return bytes.Compare(s[i].d[:], s[j].d[:]) < 0 })
	out := make([]peer.ID, len(s))
	for i := range s {
		out[i] = s[i].p
	}
	return out
}

// NewPutSession starts placing one file's shards.
func (n *Net) NewPutSession(k, m int, allowFewer bool) (engine.PutSession, error) {
	peers := append(n.ShardPeers(), n.h.ID())
	if len(peers) < k+1 && !allowFewer {
		return nil, fmt.Errorf("%w: %d peers (this node included) for %d+%d shards; a stripe needs at least %d so that losing one peer loses no data (connect more peers, or pass --allow-fewer-peers)",
			ErrFewPeers, len(peers), k, m, k+1)
	}
	s := &putSession{n: n, peers: peers, touched: map[peer.ID]bool{}, replicas: map[peer.ID]bool{}, excluded: map[peer.ID]string{}}
	if len(peers) < k+m {
		s.warn(fmt.Sprintf("only %d peers for %d+%d shards: some peers hold two shards of a stripe", len(peers), k, m))
	}
	return s, nil
}

type putSession struct {
	n     *Net
	peers []peer.ID

	mu       sync.Mutex
	touched  map[peer.ID]bool   // hold shards: their SYNC must succeed
	replicas map[peer.ID]bool   // hold only manifest copies: SYNC is best effort
	excluded map[peer.ID]string // peers that refused or failed during this put
	warnings []string
}

func (s *putSession) warn(w string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, x := range s.warnings {
		if x == w {
			return
		}
	}
	s.warnings = append(s.warnings, w)
	s.n.log.Warn(w)
}

func (s *putSession) Warnings() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.warnings...)
}

func (s *putSession) exclude(p peer.ID, why string) {
	s.mu.Lock()
	s.excluded[p] = why
	s.mu.Unlock()
	s.n.log.Info("placing elsewhere", "peer", p.ShortString(), "why", why)
}

func (s *putSession) isExcluded(p peer.ID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.excluded[p]
	return ok
}

// storeOn stores b on p: locally for this node, else over the shard protocol.
func (s *putSession) storeOn(ctx context.Context, p peer.ID, b blocks.Block) error {
	if p == s.n.h.ID() {
		if _, err := s.n.svc.storeBlock(ctx, b); err != nil {
			return err
		}
		s.n.Announce(b.Cid())
	} else {
		sctx, cancel := context.WithTimeout(ctx, fetchTimeout)
		defer cancel()
		if err := s.n.client.Store(sctx, p, b, 0); err != nil {
			return err
		}
	}
	s.mu.Lock()
	s.touched[p] = true
	s.mu.Unlock()
	return nil
}

// PlaceStripe stores one stripe's shards on distinct peers where it can,
// closest by XOR first, and returns each shard's holder.
func (s *putSession) PlaceStripe(ctx context.Context, shards []blocks.Block) ([][]byte, error) {
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
			order := rank(s.peers, b.Cid())
			for {
				p, ok := claim(order)
				if !ok {
					errs[i] = fmt.Errorf("p2p: no peer accepted shard %s (%s)", blockstore.Short(b.Cid()), s.why())
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

func (s *putSession) why() string {
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
	if errors.Is(err, errFull) {
		return "full"
	}
	return err.Error()
}

// Replicate stores a manifest block on every candidate peer (this node
// always): manifest blocks are small, and a reader needs the root first.
// Only this node's copy is required; the others are best effort.
func (s *putSession) Replicate(ctx context.Context, b blocks.Block) error {
	if err := s.n.store.PutManyDeferred(ctx, []blocks.Block{b}); err != nil {
		return err
	}
	s.mu.Lock()
	s.touched[s.n.h.ID()] = true
	s.mu.Unlock()
	s.n.Announce(b.Cid())
	var wg sync.WaitGroup
	for _, p := range rank(s.peers, b.Cid()) {
		if p == s.n.h.ID() || s.isExcluded(p) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sctx, cancel := context.WithTimeout(ctx, fetchTimeout)
			defer cancel()
			if err := s.n.client.Store(sctx, p, b, 0); err != nil {
				s.n.log.Info("manifest replica not stored", "peer", p.ShortString(), "err", err)
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

// Flush makes every block placed in this session durable on its holder.
func (s *putSession) Flush(ctx context.Context) error {
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
			if p == s.n.h.ID() {
				errs[i] = s.n.store.Sync(ctx)
				return
			}
			sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
			defer cancel()
			err := s.n.client.Sync(sctx, p)
			switch {
			case err == nil:
			case required[p]:
				errs[i] = fmt.Errorf("p2p: peer %s did not confirm its shards durable: %w", p.ShortString(), err)
			default:
				s.n.log.Info("manifest replica not confirmed durable", "peer", p.ShortString(), "err", err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Fetch returns a block whose bytes match its CID: from the local store,
// then the hinted peer, then (deep) DHT providers, then any connected peer
// that has it (bitswap). Every source's bytes are hashed against c before
// they are returned, the local store's included (engine.Network's
// invariant); a peer whose bytes do not match is avoided for badPeerPenalty
// and the next source is tried.
func (n *Net) Fetch(ctx context.Context, c cid.Cid, hint []byte, deep bool) ([]byte, error) {
	if err := blockstore.CheckCID(c); err != nil {
		return nil, ipld.ErrNotFound{Cid: c}
	}
	data, err := n.store.GetInto(ctx, c, frames.get)
	if err == nil {
		if blockstore.Verify(c, data) == nil {
			return data, nil
		}
		frames.put(data)
		n.log.Warn("local copy of a block is corrupt", "cid", blockstore.Short(c))
	}
	tried := map[peer.ID]bool{n.h.ID(): true}
	try := func(p peer.ID) ([]byte, bool) {
		if tried[p] || n.isBad(p) {
			return nil, false
		}
		tried[p] = true
		if !n.connect(ctx, p, deep) {
			return nil, false
		}
		fctx, cancel := context.WithTimeout(ctx, fetchTimeout)
		defer cancel()
		data, err := n.client.Fetch(fctx, p, c)
		if err != nil {
			var re *wire.RemoteError
			if !errors.As(err, &re) && ctx.Err() == nil {
				n.markDown(p) // unreachable: do not dial it for every shard
				// The connection may be a dead one that still looks open
				// (QUIC waits for its idle timeout): drop it.
				_ = n.h.Network().ClosePeer(p)
			}
			return nil, false
		}
		if err := blockstore.Verify(c, data); err != nil {
			frames.put(data)
			n.markBad(p, "served a block that does not match its CID")
			return nil, false
		}
		return data, true
	}
	if len(hint) > 0 {
		if p, err := peer.IDFromBytes(hint); err == nil {
			if d, ok := try(p); ok {
				return d, nil
			}
		}
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if !deep {
		return nil, ipld.ErrNotFound{Cid: c}
	}
	fctx, cancel := context.WithTimeout(ctx, findTimeout)
	for ai := range n.dht.FindProvidersAsync(fctx, c, providers) {
		if d, ok := try(ai.ID); ok {
			cancel()
			return d, nil
		}
	}
	cancel()
	if n.bitswap != nil {
		bctx, cancel := context.WithTimeout(ctx, bitswapTimeout)
		b, err := n.bitswap.GetBlock(bctx, c)
		cancel()
		if err == nil && blockstore.Verify(c, b.RawData()) == nil {
			// A copy: bitswap may keep its block, and the caller may hand
			// the bytes to Release.
			return bytes.Clone(b.RawData()), nil
		}
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return nil, ipld.ErrNotFound{Cid: c}
}

// Release gives back the bytes of a fetched block once the caller is done
// with them: they are reused for later transfers.
func (n *Net) Release(b []byte) { frames.put(b) }
