package dht

import (
	"context"
	"errors"
	"slices"
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
// set without a lookup of their own, as long as it holds every peer of the
// routing table. On 5 daemons that halves the round
// trips of announcing a put. A new connection, or an ADD_PROVIDER that
// fails, ends the reuse.

// reuseFor is how long one whole-network lookup serves the next provides.
const reuseFor = 10 * time.Second

// putProviderLimit bounds one ADD_PROVIDER.
const putProviderLimit = 10 * time.Second

// wholeNet is the last lookup's answer, when it named the whole network.
// gen counts clears: a lookup that ran across one does not set its answer.
type wholeNet struct {
	mu    sync.Mutex
	peers []peer.ID
	at    time.Time
	gen   uint64
}

// get returns the kept answer if it is recent and holds every peer of the
// routing table rt (kad adds a peer some time after it connects).
func (w *wholeNet) get(now time.Time, rt []peer.ID) ([]peer.ID, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.peers == nil || now.Sub(w.at) >= reuseFor {
		return nil, false
	}
	for _, p := range rt {
		if !slices.Contains(w.peers, p) {
			return nil, false
		}
	}
	return w.peers, true
}

func (w *wholeNet) generation() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.gen
}

// set keeps peers unless a clear came after generation gen.
func (w *wholeNet) set(peers []peer.ID, at time.Time, gen uint64) {
	w.mu.Lock()
	if w.gen == gen {
		w.peers, w.at = peers, at
	}
	w.mu.Unlock()
}

func (w *wholeNet) clear() {
	w.mu.Lock()
	w.peers, w.at = nil, time.Time{}
	w.gen++
	w.mu.Unlock()
}

// providing is what provide needs besides kad itself.
type providing struct {
	msgr     *pb.ProtocolMessenger
	sender   *providerSender
	whole    wholeNet
	lookups  atomic.Int64 // lookups run (tests)
	notifiee network.Notifiee
}

// newProviding watches h's connections: a new peer may be closer.
func (d *DHT) newProviding() error {
	d.prov.sender = newProviderSender(d.kad.MessageSender(), d.kad.Host(), kadProtocol)
	m, err := pb.NewProtocolMessenger(d.prov.sender)
	if err != nil {
		return err
	}
	d.prov.msgr = m
	d.prov.notifiee = &network.NotifyBundle{ConnectedF: func(network.Network, network.Conn) { d.prov.whole.clear() }}
	d.kad.Host().Network().Notify(d.prov.notifiee)
	return nil
}

// provide announces c: this node as its provider, in the local provider
// store and at the closest peers.
func (d *DHT) provide(ctx context.Context, c cid.Cid) error {
	if err := d.kad.Provide(ctx, c, false); err != nil { // the local record
		return err
	}
	peers, ok := d.prov.whole.get(time.Now(), d.kad.RoutingTable().ListPeers())
	var lookupErr error
	if !ok {
		peers, lookupErr = d.lookup(ctx, c)
		if peers == nil {
			return lookupErr
		}
	}
	self := peer.AddrInfo{ID: d.kad.PeerID(), Addrs: d.kad.FilteredAddrs()}
	var wg sync.WaitGroup
	for _, p := range peers {
		wg.Go(func() {
			pctx, cancel := context.WithTimeout(ctx, putProviderLimit)
			defer cancel()
			err := d.prov.msgr.PutProviderAddrs(pctx, p, c.Hash(), self)
			if errors.Is(err, errStalled) {
				return // still there: the peers are as they were
			}
			if err != nil {
				d.prov.whole.clear() // the next provide looks the peers up again
				d.log.Debug("add provider failed", "peer", p.String(), "err", err)
			}
		})
	}
	wg.Wait()
	if lookupErr != nil {
		return lookupErr
	}
	return ctx.Err()
}

// lookup finds the peers closest to c, as kad's own provide does: with a
// second (or a tenth) of ctx kept back, so that a lookup a stalling peer
// holds up still yields the peers it found, for the ADD_PROVIDERs; its
// error is returned with them. A whole-network answer is kept for reuse.
func (d *DHT) lookup(ctx context.Context, c cid.Cid) ([]peer.ID, error) {
	lctx := ctx
	if dl, ok := ctx.Deadline(); ok {
		left := time.Until(dl)
		if left <= 0 {
			return nil, context.DeadlineExceeded
		}
		var cancel context.CancelFunc
		lctx, cancel = context.WithDeadline(ctx, dl.Add(-min(left/10, time.Second)))
		defer cancel()
	}
	gen := d.prov.whole.generation()
	d.prov.lookups.Add(1)
	found, err := d.kad.GetClosestPeers(lctx, string(c.Hash()))
	switch {
	case err == nil:
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
		return found, err // partial: sent to, never kept
	default:
		return nil, err
	}
	// Reused only on a small network by both counts: a lookup that fell
	// short on a large one must not stand for others.
	k := d.kad.BucketSize()
	if len(found) > 0 && len(found) < k && d.kad.RoutingTable().Size() < k {
		d.prov.whole.set(found, time.Now(), gen)
	}
	return found, nil
}
