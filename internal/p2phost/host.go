// Package p2p is umbra's network glue: the libp2p host (identity, transports,
// allowlist gater, private network), the Kademlia DHT, and the shard
// protocol (/umbra/shard/1.0.0) with placement and retrieval on top. The
// protocol's frames live in internal/wire; docs/protocol.md specifies both.
package p2phost

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/pnet"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	goyamux "github.com/libp2p/go-yamux/v5"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/umbra-store/umbra/internal/config"
)

// Options configure New.
type Options struct {
	Key        ed25519.PrivateKey
	Listen     []string
	AllowPeers []string // empty: anyone
	SwarmKey   string   // hex, 32 bytes; empty: open network
	// Protocols are the per-peer stream limits of the protocols this node
	// serves beyond libp2p's own (the shard protocol's, say).
	Protocols []ProtocolLimit
}

// FromConfig fills Options from a node config.
func FromConfig(key ed25519.PrivateKey, c config.Network, protocols ...ProtocolLimit) Options {
	return Options{Key: key, Listen: c.Listen, AllowPeers: c.AllowPeers, SwarmKey: c.SwarmKey, Protocols: protocols}
}

// New starts a libp2p host: TCP (and QUIC unless a swarm key is set) on
// the listen addresses, no relay, no NAT mapping, no mDNS.
func New(o Options) (host.Host, error) {
	priv, err := crypto.UnmarshalEd25519PrivateKey(o.Key)
	if err != nil {
		return nil, fmt.Errorf("host: identity: %w", err)
	}
	rm, err := newResourceManager(o.Protocols)
	if err != nil {
		return nil, err
	}
	opts := []libp2p.Option{
		libp2p.Identity(priv),
		libp2p.ListenAddrStrings(o.Listen...),
		libp2p.DisableRelay(),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.ResourceManager(rm),
		libp2p.SwarmOpts(swarm.WithDialRanker(tcpFirst)),
		// TLS 1.3 only (libp2p's default also offers Noise), with its
		// records coalesced into fewer socket writes.
		libp2p.Security(libp2ptls.ID, newCoalescingTLS),
		libp2p.Muxer(yamux.ID, bigFrameYamux()),
	}

	if o.SwarmKey != "" {
		raw, err := hex.DecodeString(o.SwarmKey)
		if err != nil || len(raw) != 32 {
			return nil, fmt.Errorf("host: swarm key must be 64 hex characters")
		}
		// NB: libp2p's pnet protects TCP only; QUIC is not offered with it.
		opts = append(opts, libp2p.PrivateNetwork(pnet.PSK(raw)))
	} else {
		opts = append(opts, libp2p.Transport(quic.NewTransport))
	}
	if len(o.AllowPeers) > 0 {
		g, err := newAllowGater(o.AllowPeers)
		if err != nil {
			return nil, err
		}
		opts = append(opts, libp2p.ConnectionGater(g))
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("host: start host: %w", err)
	}
	return h, nil
}

// tcpFirst dials TCP addresses at once and QUIC ones only if TCP has not
// connected within 250 ms. libp2p's default does the opposite; on the links
// umbra runs on TCP moves bulk data faster (QUIC measured at ~40% of TCP on
// loopback), and a killed peer's TCP connection ends at once where QUIC's
// lingers until its idle timeout.
func tcpFirst(addrs []ma.Multiaddr) []network.AddrDelay {
	out := make([]network.AddrDelay, 0, len(addrs))
	for _, a := range addrs {
		d := time.Duration(0)
		if _, err := a.ValueForProtocol(ma.P_TCP); err != nil {
			d = 250 * time.Millisecond
		}
		out = append(out, network.AddrDelay{Addr: a, Delay: d})
	}
	return out
}

// allowGater admits only listed peers, inbound and outbound, on every
// transport (it acts after the security handshake names the peer).
type allowGater struct{ allow map[peer.ID]bool }

func newAllowGater(ids []string) (*allowGater, error) {
	g := &allowGater{allow: map[peer.ID]bool{}}
	for _, s := range ids {
		id, err := peer.Decode(s)
		if err != nil {
			return nil, fmt.Errorf("host: AllowPeers: %q: %w", s, err)
		}
		g.allow[id] = true
	}
	return g, nil
}

func (g *allowGater) InterceptPeerDial(p peer.ID) bool                 { return g.allow[p] }
func (g *allowGater) InterceptAddrDial(p peer.ID, _ ma.Multiaddr) bool { return g.allow[p] }
func (g *allowGater) InterceptAccept(network.ConnMultiaddrs) bool      { return true }
func (g *allowGater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) {
	return true, 0
}
func (g *allowGater) InterceptSecured(_ network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	return g.allow[p]
}

// Connect dials each bootstrap address; failures are returned together but
// do not stop the others.
func Connect(ctx context.Context, h host.Host, addrs []string) error {
	var firstErr error
	for _, a := range addrs {
		ai, err := peer.AddrInfoFromString(a)
		if err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("host: bootstrap address %q: %w", a, err)
			}
			continue
		}
		if err := h.Connect(ctx, *ai); err != nil && firstErr == nil {
			firstErr = fmt.Errorf("host: connect %s: %w", ai.ID.ShortString(), err)
		}
	}
	return firstErr
}

// maxFrame is the largest yamux frame this host sends. yamux's default,
// 64 KiB, made a shard of 350 KiB six frames, each its own write to TLS
// and its own socket write; a receiver takes any frame its window holds
// (256 KiB at least), so the wire stays yamux/1.0.0.
const maxFrame = 256 << 10

// bigFrameYamux is libp2p's yamux transport sending frames of up to
// maxFrame.
func bigFrameYamux() *yamux.Transport {
	c := *(*goyamux.Config)(yamux.DefaultTransport)
	c.MaxMessageSize = maxFrame
	return (*yamux.Transport)(&c)
}
