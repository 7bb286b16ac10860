package dht

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
)

// reannounceOrigin is the queue share of the periodic re-announce.
const reannounceOrigin = "\x00reannounce"

// atomicTime is a time read and written from several goroutines.
type atomicTime struct{ ns atomic.Int64 }

func (t *atomicTime) store(v time.Time) { t.ns.Store(v.UnixNano()) }
func (t *atomicTime) load() time.Time   { return time.Unix(0, t.ns.Load()) }

// Announce queues c, a block of this node's own, to be provided on the DHT
// and notes that a block was just stored here (announcements wait for a
// quiet moment). A full queue drops c; the periodic re-announce catches up.
func (d *DHT) Announce(c cid.Cid) { d.AnnounceFrom("", c) }

// Announcing returns how many blocks wait to be announced or are being
// announced now.
func (d *DHT) Announcing() int { return d.queue.pending() }

// AnnounceFrom is Announce for a block peer from stored here: each peer has
// its own share of the queue, served in turn with the others.
func (d *DHT) AnnounceFrom(from peer.ID, c cid.Cid) {
	d.lastStore.store(time.Now())
	d.queue.push(string(from), c)
}

func (d *DHT) announcer(ctx context.Context) {
	for {
		c, ok := d.queue.pop(ctx)
		if !ok {
			return
		}
		if !d.waitQuiet(ctx) {
			d.queue.done()
			return
		}
		pctx, cancel := context.WithTimeout(ctx, provideLimit)
		if err := d.provide(pctx, c); err != nil && ctx.Err() == nil {
			d.log.Debug("provide failed", "cid", c.String(), "err", err)
		}
		cancel()
		d.queue.done()
		// Each provide is a DHT lookup plus ADD_PROVIDER round trips on
		// other nodes: pace them so that catching up never starves
		// transfers.
		select {
		case <-ctx.Done():
			return
		case <-time.After(d.pace):
		}
	}
}

// waitQuiet waits until no block has been stored for d.quiet, or d.maxWait
// has passed; false when ctx ended.
func (d *DHT) waitQuiet(ctx context.Context) bool {
	deadline := time.Now().Add(d.maxWait)
	for {
		quietFor := time.Since(d.lastStore.load())
		left := time.Until(deadline)
		if quietFor >= d.quiet || left <= 0 {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(min(d.quiet-quietFor, left)):
		}
	}
}

// Reannounce queues every CID that all lists, first after first and then
// every interval, until ctx ends, so that provider records never lapse
// (kad-dht keeps them 48 h). A listing that fails is logged and tried again
// at the next interval.
func (d *DHT) Reannounce(ctx context.Context, first, interval time.Duration, all func(context.Context) (<-chan cid.Cid, error)) {
	t := time.NewTimer(first)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if ch, err := all(ctx); err != nil {
			d.log.Warn("re-announce: listing what this node holds failed", "err", err)
		} else {
			for c := range ch {
				if !d.queue.pushWait(ctx, reannounceOrigin, c) {
					return
				}
			}
		}
		t.Reset(interval)
	}
}
