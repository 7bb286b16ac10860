package dht

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"
	pb "github.com/libp2p/go-libp2p-kad-dht/pb"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// A provide is a lookup of the peers closest to the block (FIND_NODE round
// trips to the peers on the way) and then an ADD_PROVIDER to each. When a
// lookup names fewer peers than the bucket size, and the routing table
// holds fewer too, it has named every peer it could reach, and the closest
// peers to any other key are the same set:
// the provides that follow within reuseFor send their ADD_PROVIDERs to that
// set without a lookup of their own. On 5 daemons that halves the round
// trips of announcing a put. A new connection, or an ADD_PROVIDER that
// fails, ends the reuse.

// reuseFor is how long one whole-network lookup serves the next provides.
const reuseFor = 10 * time.Second

// putProviderLimit bounds one ADD_PROVIDER.
const putProviderLimit = 10 * time.Second

// wholeNet is the last lookup's answer, when it named the whole network.
type wholeNet struct {
	mu    sync.Mutex
	peers []peer.ID
	at    time.Time
}

func (w *wholeNet) get(now time.Time) ([]peer.ID, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.peers, w.peers != nil && now.Sub(w.at) < reuseFor
}

func (w *wholeNet) set(peers []peer.ID, at time.Time) {
	w.mu.Lock()
	w.peers, w.at = peers, at
	w.mu.Unlock()
}

func (w *wholeNet) clear() { w.set(nil, time.Time{}) }

// providing is what provide needs besides kad itself.
type providing struct {
	msgr    *pb.ProtocolMessenger
	whole   wholeNet
	lookups atomic.Int64 // lookups run (tests)
}

// newProviding watches h's connections: a new peer may be closer.
func (d *DHT) newProviding() error {
	m, err := pb.NewProtocolMessenger(d.kad.MessageSender())
	if err != nil {
		return err
	}
	d.prov.msgr = m
	d.kad.Host().Network().Notify(&network.NotifyBundle{ConnectedF: func(network.Network, network.Conn) { d.prov.whole.clear() }})
	return nil
}

// provide announces c: this node as its provider, in the local provider
// store and at the closest peers.
func (d *DHT) provide(ctx context.Context, c cid.Cid) error {
	if err := d.kad.Provide(ctx, c, false); err != nil { // the local record
		return err
	}
	peers, ok := d.prov.whole.get(time.Now())
	if !ok {
		d.prov.lookups.Add(1)
		found, err := d.kad.GetClosestPeers(ctx, string(c.Hash()))
		if err != nil {
			return err
		}
		// Reused only on a small network by both counts: a lookup that
		// fell short on a large one (timeouts) must not stand for others.
		k := d.kad.BucketSize()
		if peers = found; len(found) > 0 && len(found) < k && d.kad.RoutingTable().Size() < k {
			d.prov.whole.set(found, time.Now())
		}
	}
	self := peer.AddrInfo{ID: d.kad.PeerID(), Addrs: d.kad.FilteredAddrs()}
	var wg sync.WaitGroup
	for _, p := range peers {
		wg.Go(func() {
			pctx, cancel := context.WithTimeout(ctx, putProviderLimit)
			defer cancel()
			if err := d.prov.msgr.PutProviderAddrs(pctx, p, c.Hash(), self); err != nil {
				d.prov.whole.clear() // the next provide looks the peers up again
				d.log.Debug("add provider failed", "peer", p.String(), "err", err)
			}
		})
	}
	wg.Wait()
	return ctx.Err()
}
