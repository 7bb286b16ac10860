package p2p

import (
	"fmt"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
)

// Resource limits of the libp2p host, sized for umbra's kind of node: a
// daemon of at most ~200 MiB serving a few dozen peers. They bound what the
// muxer buffers for peers (yamux reserves each stream's receive window from
// these scopes) and how many connections and streams anyone may open; the
// shard service's own payload budget (budget.go) bounds the buffers it
// reads requests into and writes replies from. docs/threat-model.md lists
// the values.
const (
	// limitMemory is the memory libp2p's scopes may reserve in all.
	limitMemory = 128 << 20 // bytes
	// limitFD is the file descriptors connections may hold in all.
	limitFD = 512
	// peerMemory is what one peer's connections may reserve (receive
	// windows of its streams): a peer that sends and never lets its data
	// be read holds at most this much.
	peerMemory = 32 << 20 // bytes
	// peerStreamsIn is how many streams one peer may have open to this
	// node at once, over every protocol.
	peerStreamsIn = 256
	// shardStreamsIn is how many shard-protocol streams one peer may have
	// open to this node at once (umbra's client uses a few per peer and
	// keeps at most 8 idle).
	shardStreamsIn = 64
	// transientStreamsIn is how many inbound streams may wait for their
	// protocol to be negotiated at once, from all peers: above
	// peerStreamsIn, so that one peer cannot take them all.
	transientStreamsIn = 1024
)

// resourceLimits returns the host's limits: libp2p's defaults for a node
// with limitMemory and limitFD, its service limits (identify, ping …), and
// umbra's own per-peer and per-protocol limits above.
func resourceLimits() rcmgr.ConcreteLimitConfig {
	limits := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&limits)
	limits.PeerBaseLimit.Memory = peerMemory
	limits.PeerBaseLimit.StreamsInbound = peerStreamsIn
	limits.TransientBaseLimit.StreamsInbound = transientStreamsIn
	limits.TransientBaseLimit.Streams = transientStreamsIn + limits.TransientBaseLimit.StreamsOutbound
	limits.AllowlistedTransientBaseLimit = limits.TransientBaseLimit
	// This node's own outbound streams are not limited below what its puts
	// and gets use: a refused stream would exclude an honest peer.
	limits.AddProtocolLimit(ShardProtocol,
		rcmgr.BaseLimit{StreamsInbound: 1024, StreamsOutbound: 4096, Streams: 4096, Memory: 64 << 20},
		rcmgr.BaseLimitIncrease{})
	limits.AddProtocolPeerLimit(ShardProtocol,
		rcmgr.BaseLimit{StreamsInbound: shardStreamsIn, StreamsOutbound: 512, Streams: shardStreamsIn + 512, Memory: peerMemory},
		rcmgr.BaseLimitIncrease{})
	// Scale with exactly limitMemory: the base limits (libp2p's "minimal
	// node") apply, not a share of this machine's RAM.
	return limits.Scale(limitMemory, limitFD)
}

// newResourceManager returns the host's resource manager.
func newResourceManager() (network.ResourceManager, error) {
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(resourceLimits()))
	if err != nil {
		return nil, fmt.Errorf("p2p: resource manager: %w", err)
	}
	return rm, nil
}
