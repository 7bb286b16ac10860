package p2phost_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/umbra-store/umbra/blockstore"
	"github.com/umbra-store/umbra/internal/p2phost"
	"github.com/umbra-store/umbra/internal/shard"
)

func testHost(t *testing.T, o p2phost.Options) host.Host {
	t.Helper()
	_, o.Key, _ = ed25519.GenerateKey(rand.Reader)
	h, err := p2phost.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// addrOf returns h's listen address on one transport ("/tcp/" or "/quic").
func addrOf(t *testing.T, h host.Host, transport string) peer.AddrInfo {
	t.Helper()
	for _, a := range h.Addrs() {
		if strings.Contains(a.String(), transport) {
			return peer.AddrInfo{ID: h.ID(), Addrs: []ma.Multiaddr{a}}
		}
	}
	t.Fatalf("no %s address in %v", transport, h.Addrs())
	return peer.AddrInfo{}
}

// TestAllowlistGatesTCPAndQUIC: a node with AllowPeers serves a listed peer
// over TCP and over QUIC, and a peer not listed over neither: whatever its
// Connect returned, the node holds no connection to it, a STORE and a FETCH
// from it fail, the block never reaches the store, and the node does not
// dial it either.
func TestAllowlistGatesTCPAndQUIC(t *testing.T) {
	ctx := context.Background()
	listen := []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}
	for _, transport := range []string{"/tcp/", "/quic"} {
		t.Run(strings.Trim(transport, "/"), func(t *testing.T) {
			friend := testHost(t, p2phost.Options{Listen: listen})
			stranger := testHost(t, p2phost.Options{Listen: listen})
			srv := testHost(t, p2phost.Options{Listen: listen, AllowPeers: []string{friend.ID().String()}})
			st, err := blockstore.Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			shard.NewServer(srv, st, shard.ServerOptions{})
			ai := addrOf(t, srv, transport)
			if err := friend.Connect(ctx, ai); err != nil {
				t.Fatal(err)
			}
			b, _ := blockstore.NewBlock([]byte("from a friend over " + transport))
			if err := shard.NewClient(friend).Store(ctx, srv.ID(), b, shard.Lease{}); err != nil {
				t.Fatalf("listed peer cannot store: %v", err)
			}
			for _, c := range friend.Network().ConnsToPeer(srv.ID()) {
				if !strings.Contains(c.RemoteMultiaddr().String(), transport) {
					t.Fatalf("connected over %s, not %s", c.RemoteMultiaddr(), transport)
				}
			}

			_ = stranger.Connect(ctx, ai) // its error is not the test
			c := shard.NewClient(stranger)
			sb, _ := blockstore.NewBlock([]byte("from a stranger over " + transport))
			if err := c.Store(ctx, srv.ID(), sb, shard.Lease{}); err == nil {
				t.Fatal("a peer outside the allowlist stored a block")
			}
			if _, err := c.Fetch(ctx, srv.ID(), b.Cid(), 1<<20); err == nil {
				t.Fatal("a peer outside the allowlist fetched a block")
			}
			if has, _ := st.Has(ctx, sb.Cid()); has {
				t.Fatal("the stranger's block reached the store")
			}
			if n := len(srv.Network().ConnsToPeer(stranger.ID())); n != 0 {
				t.Fatalf("the node holds %d connections to a stranger", n)
			}
			if err := srv.Connect(ctx, addrOf(t, stranger, transport)); err == nil ||
				srv.Network().Connectedness(stranger.ID()) == network.Connected {
				t.Fatal("the node dialled a peer outside its allowlist")
			}
		})
	}
}

// TestSilentConnectionsDoNotLockPeersOut is the review's finding on the
// host's limits: 40 TCP connections that never speak held every slot of the
// 32 connections allowed to wait for a handshake, for libp2p's 15 s accept
// timeout, and no peer — not even a listed one on a swarm-keyed network,
// nor over QUIC — could connect. Hundreds no longer do.
func TestSilentConnectionsDoNotLockPeersOut(t *testing.T) {
	key := make([]byte, 32)
	rand.Read(key)
	for name, o := range map[string]struct {
		listen    []string
		swarm     string
		transport string
	}{
		"swarm key over TCP": {[]string{"/ip4/127.0.0.1/tcp/0"}, hex.EncodeToString(key), "/tcp/"},
		"QUIC":               {[]string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}, "", "/quic"},
	} {
		t.Run(name, func(t *testing.T) {
			friend := testHost(t, p2phost.Options{Listen: o.listen, SwarmKey: o.swarm})
			srv := testHost(t, p2phost.Options{Listen: o.listen, SwarmKey: o.swarm, AllowPeers: []string{friend.ID().String()}})
			na, err := manet.ToNetAddr(addrOf(t, srv, "/tcp/").Addrs[0])
			if err != nil {
				t.Fatal(err)
			}
			for range 300 {
				c, err := net.Dial("tcp", na.String())
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close() // and say nothing
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := friend.Connect(ctx, addrOf(t, srv, o.transport)); err != nil {
				t.Fatalf("300 silent TCP connections keep a listed peer out: %v", err)
			}
		})
	}
}
