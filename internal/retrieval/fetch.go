package retrieval

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/umbra-store/umbra/blockstore"
	"github.com/umbra-store/umbra/dht"
	"github.com/umbra-store/umbra/internal/shard"
	"github.com/umbra-store/umbra/internal/xfer"
)

// Timeouts, in the order sources are tried.
const (
	fetchTimeout   = 10 * time.Second // one block from one peer
	findTimeout    = 5 * time.Second  // a DHT provider search
	dialTimeout    = time.Second      // to a holder this node is not connected to
	bitswapTimeout = 5 * time.Second  // the last resort: bitswap asks every connected peer
	providers      = 8                // providers asked for per CID
	nearestAsked   = 4                // connected peers nearest a block asked before the DHT
)

// Local is this node's block store, as retrieval reads it: every block
// read is hashed here, so the store's own checksum is skipped
// (blockstore.Store.GetIntoUnchecked).
type Local interface {
	GetIntoUnchecked(ctx context.Context, c cid.Cid, get func(n int) []byte) ([]byte, error)
}

// Peers fetch blocks from a peer: the shard protocol's client. An answer
// larger than size is refused unread.
type Peers interface {
	FetchInto(ctx context.Context, p peer.ID, c cid.Cid, size int, into []byte) ([]byte, error)
}

// Providers finds the peers that announced a block: the DHT.
type Providers interface {
	FindProvidersAsync(ctx context.Context, c cid.Cid, n int) <-chan peer.AddrInfo
}

// BlockGetter asks the network at large for a block: bitswap.
type BlockGetter interface {
	GetBlock(ctx context.Context, c cid.Cid) (blocks.Block, error)
}

var (
	_ Local = (*blockstore.Store)(nil)
	_ Peers = (*shard.Client)(nil)
)

// Fetcher fetches blocks for this node.
type Fetcher struct {
	h         host.Host
	local     Local
	peers     Peers
	providers Providers
	bitswap   BlockGetter // nil: no last resort
	log       *slog.Logger
	health    *health

	mu      sync.Mutex
	dialing map[peer.ID]chan struct{} // dials in flight, one per peer
}

// New returns a fetcher over the host h, this node's store, the shard
// client, the DHT and (if not nil) bitswap.
func New(h host.Host, local Local, peers Peers, providers Providers, bitswap BlockGetter, log *slog.Logger) *Fetcher {
	return &Fetcher{h: h, local: local, peers: peers, providers: providers, bitswap: bitswap, log: log,
		health: newHealth(), dialing: map[peer.ID]chan struct{}{}}
}

// Fetch returns a block of at most size bytes whose bytes match c: from the
// local store, then the hinted peer (hint: its binary peer ID, or nil), then
// — deep only — DHT providers, then bitswap. Every source's bytes are
// hashed against c before they are returned, the local store's included; a
// peer whose bytes do not match, or that sends more than size, is avoided
// for badPeerPenalty and the next source is tried. Nothing larger than size
// is read into memory. A block not found anywhere is an error satisfying
// ipld.IsNotFound. The bytes may be given back with Release.
//
// A block of exactly len(into) bytes, from the local store or a peer, is
// read into into (the caller's own buffer, where it will be used: no copy)
// and returned there; into is written only while Fetch runs, one source
// after another, and holds unchecked bytes when Fetch fails. Bitswap's
// blocks, and blocks of other sizes, come in buffers of their own.
func (f *Fetcher) Fetch(ctx context.Context, c cid.Cid, size int, hint []byte, deep bool, into []byte) ([]byte, error) {
	if err := blockstore.CheckCID(c); err != nil {
		return nil, ipld.ErrNotFound{Cid: c}
	}
	data, err := f.local.GetIntoUnchecked(ctx, c, func(n int) []byte {
		if n > size {
			return nil // refused: the store reports it
		}
		if n > 0 && n == len(into) {
			return into
		}
		return shard.Buffer(n)
	})
	if err == nil {
		if blockstore.Verify(c, data) == nil {
			xfer.From(ctx).Received(true)
			return data, nil
		}
		shard.ReleaseExcept(data, into)
		f.log.Warn("local copy of a block is corrupt", "cid", blockstore.Short(c))
	}
	tried := map[peer.ID]bool{f.h.ID(): true}
	try := func(p peer.ID) ([]byte, bool) {
		if tried[p] || f.health.avoid(p) {
			return nil, false
		}
		tried[p] = true
		return f.fromPeer(ctx, p, c, size, deep, into)
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
	// Where a put or a repair would have placed it: the connected peers
	// nearest the block (placement ranks them the same way). A repaired
	// shard is not where its hint says, and its holder's announcement may
	// lag.
	for _, p := range f.nearest(c, nearestAsked) {
		if d, ok := try(p); ok {
			return d, nil
		}
	}
	fctx, cancel := context.WithTimeout(ctx, findTimeout)
	for ai := range f.providers.FindProvidersAsync(fctx, c, providers) {
		if d, ok := try(ai.ID); ok {
			cancel()
			return d, nil
		}
	}
	cancel()
	if d, ok := f.fromBitswap(ctx, c, size); ok {
		return d, nil
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return nil, ipld.ErrNotFound{Cid: c}
}

// nearest returns up to n connected shard peers, nearest c by XOR first.
func (f *Fetcher) nearest(c cid.Cid, n int) []peer.ID {
	var ps []peer.ID
	for _, p := range f.h.Network().Peers() {
		if f.h.Network().Connectedness(p) != network.Connected {
			continue
		}
		if ok, _ := f.h.Peerstore().SupportsProtocols(p, shard.Protocol); len(ok) == 0 {
			continue
		}
		ps = append(ps, p)
	}
	ps = dht.Rank(ps, c)
	return ps[:min(n, len(ps))]
}

// fromPeer asks p for c (dialling it first, waiting for the dial only when
// deep) and checks what it sends.
func (f *Fetcher) fromPeer(ctx context.Context, p peer.ID, c cid.Cid, size int, deep bool, into []byte) ([]byte, bool) {
	if !f.connect(ctx, p, deep) {
		return nil, false
	}
	fctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	data, err := f.peers.FetchInto(fctx, p, c, size, into)
	if errors.Is(err, shard.ErrTooLarge) {
		f.health.markBad(p)
		f.log.Warn("avoiding peer", "peer", p.ShortString(), "why", "sent a block larger than the one asked for")
		return nil, false
	}
	if err != nil {
		var re *shard.RemoteError
		if !errors.As(err, &re) && ctx.Err() == nil {
			f.health.markDown(p) // unreachable: do not dial it for every shard
			// The connection may be a dead one that still looks open
			// (QUIC waits for its idle timeout): drop it.
			_ = f.h.Network().ClosePeer(p)
		}
		return nil, false
	}
	if err := blockstore.Verify(c, data); err != nil {
		shard.ReleaseExcept(data, into)
		f.health.markBad(p)
		f.log.Warn("avoiding peer", "peer", p.ShortString(), "why", "served a block that does not match its CID")
		return nil, false
	}
	xc := xfer.From(ctx)
	xc.Received(false)
	xc.FromPeer(p.String(), len(data))
	return data, true
}

// fromBitswap is the last resort: bitswap asks every connected peer. Its
// block is hashed as well; a mismatch is dropped with no peer avoided
// (bitswap does not say which peer sent it).
func (f *Fetcher) fromBitswap(ctx context.Context, c cid.Cid, size int) ([]byte, bool) {
	if f.bitswap == nil {
		return nil, false
	}
	bctx, cancel := context.WithTimeout(ctx, bitswapTimeout)
	defer cancel()
	b, err := f.bitswap.GetBlock(bctx, c)
	if err != nil || len(b.RawData()) > size || blockstore.Verify(c, b.RawData()) != nil {
		return nil, false
	}
	xfer.From(ctx).Received(false)
	// A copy: bitswap may keep its block, and the caller may Release it.
	return bytes.Clone(b.RawData()), true
}

// Release gives back the bytes of a fetched block once the caller is done
// with them: they are reused for later transfers.
func (f *Fetcher) Release(b []byte) { shard.Release(b) }

// connect reports whether p is connected, dialling it if not. A holder this
// node is not connected to gets a short dial (dialTimeout), one per peer at
// a time. Without wait the answer is at once: the dial goes on in the
// background, and a shallow fetch moves on to parity rather than hold up the
// read (a killed peer's TCP port refuses at once, but its QUIC address
// answers nothing until the dial times out).
func (f *Fetcher) connect(ctx context.Context, p peer.ID, wait bool) bool {
	if f.h.Network().Connectedness(p) == network.Connected {
		return true
	}
	f.mu.Lock()
	done, running := f.dialing[p]
	if !running {
		done = make(chan struct{})
		f.dialing[p] = done
		go func() {
			dctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
			err := f.h.Connect(dctx, peer.AddrInfo{ID: p})
			cancel()
			if err != nil {
				f.health.markDown(p)
			}
			f.mu.Lock()
			delete(f.dialing, p)
			f.mu.Unlock()
			close(done)
		}()
	}
	f.mu.Unlock()
	if !wait {
		return false
	}
	select {
	case <-done:
	case <-ctx.Done():
		return false
	}
	return f.h.Network().Connectedness(p) == network.Connected
}
