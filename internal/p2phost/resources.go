package p2phost

import (
	"fmt"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
)

// Resource limits of the libp2p host, sized for umbra's kind of node: a
// daemon of at most ~200 MiB serving a few dozen peers. They bound what the
// muxer buffers for peers (yamux reserves each stream's receive window from
// these scopes) and how many connections and streams anyone may open; the
// shard server's own payload budget (internal/shard) bounds the buffers it
// reads requests into and writes replies from. docs/protocol.md ("Resource
// limits") lists the values.
const (
	// limitMemory is the memory libp2p's scopes may reserve in all.
	limitMemory = 128 << 20 // bytes
	// limitFD is the file descriptors connections may hold in all.
	limitFD = 2048
	// connsIn is how many inbound connections may be open at once, and
	// also how many may be waiting for their handshake (the transient
	// scope). A connection that never speaks holds its slot for libp2p's
	// 15 s accept timeout (not settable from outside), so a low number
	// (libp2p's default is 32) let anyone who can reach the port, with a
	// few dozen silent TCP connections, keep every peer out — before any
	// allowlist or swarm key is consulted.
	connsIn = 1024
	// peerMemory is what one peer's connections may reserve (receive
	// windows of its streams): a peer that sends and never lets its data
	// be read holds at most this much.
	peerMemory = 32 << 20 // bytes
	// peerStreamsIn is how many streams one peer may have open to this
	// node at once, over every protocol.
	peerStreamsIn = 256
	// transientStreamsIn is how many inbound streams may wait for their
	// protocol to be negotiated at once, from all peers: above
	// peerStreamsIn, so that one peer cannot take them all.
	transientStreamsIn = 1024
)

// ProtocolLimit bounds one protocol's streams: InboundPerPeer at once from
// one peer, and Inbound from all peers. This node's own outbound streams
// are not limited below what its puts and gets use: a refused stream would
// exclude an honest peer.
type ProtocolLimit struct {
	ID                      protocol.ID
	Inbound, InboundPerPeer int
}

// resourceLimits returns the host's limits: libp2p's defaults for a node
// with limitMemory and limitFD, its service limits (identify, ping …), and
// umbra's own per-peer and per-protocol limits above.
func resourceLimits(protocols []ProtocolLimit) rcmgr.ConcreteLimitConfig {
	limits := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&limits)
	limits.PeerBaseLimit.Memory = peerMemory
	limits.PeerBaseLimit.StreamsInbound = peerStreamsIn
	limits.TransientBaseLimit.StreamsInbound = transientStreamsIn
	limits.TransientBaseLimit.Streams = transientStreamsIn + limits.TransientBaseLimit.StreamsOutbound
	limits.TransientBaseLimit.ConnsInbound = connsIn
	limits.TransientBaseLimit.Conns = connsIn + limits.TransientBaseLimit.ConnsOutbound
	limits.TransientLimitIncrease.FDFraction = 0.5 // 1024 of limitFD
	limits.SystemBaseLimit.ConnsInbound = connsIn
	limits.SystemBaseLimit.Conns = connsIn + limits.SystemBaseLimit.ConnsOutbound
	limits.AllowlistedTransientBaseLimit = limits.TransientBaseLimit
	limits.AllowlistedTransientLimitIncrease = limits.TransientLimitIncrease
	limits.AllowlistedSystemBaseLimit = limits.SystemBaseLimit
	for _, p := range protocols {
		limits.AddProtocolLimit(p.ID,
			rcmgr.BaseLimit{StreamsInbound: p.Inbound, StreamsOutbound: 4096, Streams: p.Inbound + 4096, Memory: 64 << 20},
			rcmgr.BaseLimitIncrease{})
		limits.AddProtocolPeerLimit(p.ID,
			rcmgr.BaseLimit{StreamsInbound: p.InboundPerPeer, StreamsOutbound: 512, Streams: p.InboundPerPeer + 512, Memory: peerMemory},
			rcmgr.BaseLimitIncrease{})
	}
	// Scale with exactly limitMemory: the base limits (libp2p's "minimal
	// node") apply, not a share of this machine's RAM.
	return limits.Scale(limitMemory, limitFD)
}

// newResourceManager returns the host's resource manager.
func newResourceManager(protocols []ProtocolLimit) (network.ResourceManager, error) {
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(resourceLimits(protocols)))
	if err != nil {
		return nil, fmt.Errorf("host: resource manager: %w", err)
	}
	return rm, nil
}
