// Package network composes placement and retrieval into the engine's
// Network: it is the only network package that knows the engine, and the
// engine knows no network package. It also answers which connected peers
// can hold shards.
package network

import (
	"context"
	"log/slog"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/umbra-store/umbra/internal/engine"
	"github.com/umbra-store/umbra/internal/placement"
	"github.com/umbra-store/umbra/internal/retrieval"
	"github.com/umbra-store/umbra/internal/shard"
)

// Net places shards on peers and fetches blocks from them for the engine.
type Net struct {
	h     host.Host
	place placement.Deps
	fetch *retrieval.Fetcher
}

var (
	_ engine.Network    = (*Net)(nil)
	_ engine.PutSession = (*placement.Session)(nil)
)

// New returns the engine's network over host h: puts place through d,
// gets fetch through f.
func New(h host.Host, d placement.Deps, f *retrieval.Fetcher) *Net {
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	return &Net{h: h, place: d, fetch: f}
}

// ShardPeers returns the connected peers that speak the shard protocol.
func (n *Net) ShardPeers() []peer.ID {
	var out []peer.ID
	for _, p := range n.h.Network().Peers() {
		if n.h.Network().Connectedness(p) != network.Connected {
			continue
		}
		if ok, _ := n.h.Peerstore().SupportsProtocols(p, shard.Protocol); len(ok) == 0 {
			continue
		}
		out = append(out, p)
	}
	return out
}

// NewPutSession starts placing one file's shards on the peers connected
// now (and this node).
func (n *Net) NewPutSession(k, m int, allowFewer bool, expiry uint64) (engine.PutSession, error) {
	return placement.New(n.place, n.ShardPeers(), k, m, allowFewer, expiry)
}

// Fetch returns a block of at most size bytes checked against c
// (retrieval.Fetcher.Fetch).
func (n *Net) Fetch(ctx context.Context, c cid.Cid, size int, hint []byte, deep bool, into []byte) ([]byte, error) {
	return n.fetch.Fetch(ctx, c, size, hint, deep, into)
}

// Release gives back a fetched block's bytes.
func (n *Net) Release(b []byte) { n.fetch.Release(b) }
