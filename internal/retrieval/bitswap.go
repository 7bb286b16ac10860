package retrieval

import (
	"context"
	"time"

	"github.com/ipfs/boxo/bitswap"
	bsnet "github.com/ipfs/boxo/bitswap/network/bsnet"
	boxobs "github.com/ipfs/boxo/blockstore"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/routing"
)

// NewBitswap starts boxo's bitswap over the host and block store, with the
// DHT as provider finder: the generic pull path, the last step of a deep
// fetch. It announces nothing (holders announce what they store) and
// writes what it fetches into store, whose quota counts it.
func NewBitswap(ctx context.Context, h host.Host, providers routing.ContentDiscovery, store boxobs.Blockstore) *bitswap.Bitswap {
	return bitswap.New(ctx, bsnet.NewFromIpfsHost(h), providers, store,
		bitswap.ProviderSearchDelay(200*time.Millisecond),
		bitswap.WithWantHaveReplaceSize(4<<20), // shards ≤ 2 MiB: send blocks, not HAVEs
	)
}
