// Package xfer counts where a put's or a get's shards and bytes go: the
// shards asked for, received and wasted, the bytes moved with each peer,
// and the time spent in each stage. One Counters follows one operation
// through its context; the daemon keeps the sum of all of them too.
package xfer

import (
	"context"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Stage is a step of a put or a get whose time is counted.
type Stage int

// The stages. A stage's time is summed over the goroutines running it, so
// stages that overlap can add up to more than the operation's wall time.
const (
	Fetch  Stage = iota // get: waiting for a chunk's shards
	Decode              // get: Reed-Solomon decoding of a stripe that missed a data shard
	Open                // get: AES-GCM opening of a chunk
	Write               // get: handing the plaintext on
	Chunk               // put: reading and cutting the input
	Seal                // put: convergent key, AES-GCM sealing, Reed-Solomon coding, shard hashing
	Place               // put: storing shards (local store or peers)
	Flush               // put: waiting for every holder to make the file durable
	nStages
)

var stageNames = [nStages]string{"fetch", "decode", "open", "write", "chunk", "seal", "place", "flush"}

// Counters are one operation's (or a daemon's) counts. The zero value is
// ready; a nil *Counters counts nothing.
type Counters struct {
	stripes  atomic.Int64
	asked    atomic.Int64
	received atomic.Int64
	local    atomic.Int64
	hedged   atomic.Int64
	deep     atomic.Int64
	decoded  atomic.Int64
	used     atomic.Int64
	stored   atomic.Int64
	stages   [nStages]atomic.Int64 // nanoseconds

	mu    sync.Mutex
	peers map[string]*peerFlow
}

type peerFlow struct{ in, out, shardsIn, shardsOut int64 }

type ctxKey struct{}

// With returns ctx carrying c.
func With(ctx context.Context, c *Counters) context.Context {
	return context.WithValue(ctx, ctxKey{}, c)
}

// From returns the counters ctx carries (nil: none).
func From(ctx context.Context) *Counters {
	c, _ := ctx.Value(ctxKey{}).(*Counters)
	return c
}

// Stripe counts a stripe read (k: the shards it opens from) or written
// (k: 0).
func (c *Counters) Stripe(k int) {
	if c != nil {
		c.stripes.Add(1)
		c.used.Add(int64(k))
	}
}

// Asked counts a shard asked for (of the local store or a peer); hedge
// says it was asked because another straggled, deep that it is a search
// beyond its hinted holder.
func (c *Counters) Asked(hedge, deep bool) {
	if c == nil {
		return
	}
	c.asked.Add(1)
	if hedge {
		c.hedged.Add(1)
	}
	if deep {
		c.deep.Add(1)
	}
}

// Received counts a shard that arrived and matched its CID; local says it
// came from this node's store.
func (c *Counters) Received(local bool) {
	if c == nil {
		return
	}
	c.received.Add(1)
	if local {
		c.local.Add(1)
	}
}

// Decoded counts a stripe rebuilt from parity.
func (c *Counters) Decoded() {
	if c != nil {
		c.decoded.Add(1)
	}
}

// Stored counts a shard stored (put).
func (c *Counters) Stored() {
	if c != nil {
		c.stored.Add(1)
	}
}

// FromPeer counts n bytes of a shard received from peer p.
func (c *Counters) FromPeer(p string, n int) { c.flow(p, int64(n), 0) }

// ToPeer counts n bytes of a shard sent to peer p.
func (c *Counters) ToPeer(p string, n int) { c.flow(p, 0, int64(n)) }

func (c *Counters) flow(p string, in, out int64) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.peers == nil {
		c.peers = map[string]*peerFlow{}
	}
	f := c.peers[p]
	if f == nil {
		f = &peerFlow{}
		c.peers[p] = f
	}
	f.in += in
	f.out += out
	if in > 0 {
		f.shardsIn++
	}
	if out > 0 {
		f.shardsOut++
	}
}

// Time adds the time since start to stage s.
func (c *Counters) Time(s Stage, start time.Time) {
	if c != nil {
		c.stages[s].Add(int64(time.Since(start)))
	}
}

// Add adds o's counts to c (a daemon's totals).
func (c *Counters) Add(o *Counters) {
	if c == nil || o == nil {
		return
	}
	r := o.Report()
	c.stripes.Add(r.Stripes)
	c.used.Add(o.used.Load())
	c.asked.Add(r.Asked)
	c.received.Add(r.Received)
	c.local.Add(r.Local)
	c.hedged.Add(r.Hedged)
	c.deep.Add(r.Deep)
	c.decoded.Add(r.Decoded)
	c.stored.Add(r.Stored)
	for i := range c.stages {
		c.stages[i].Add(o.stages[i].Load())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.peers == nil {
		c.peers = map[string]*peerFlow{}
	}
	for _, p := range r.Peers {
		f := c.peers[p.Peer]
		if f == nil {
			f = &peerFlow{}
			c.peers[p.Peer] = f
		}
		f.in += p.BytesIn
		f.out += p.BytesOut
		f.shardsIn += p.ShardsIn
		f.shardsOut += p.ShardsOut
	}
}

// Report is counters as JSON: what `get --json`, `put --json` and
// `umbra status` show.
type Report struct {
	Stripes  int64 `json:"stripes"`
	Asked    int64 `json:"shards_asked"`
	Received int64 `json:"shards_received"`
	Local    int64 `json:"shards_local,omitempty"`
	// Wasted shards were received but not needed: beyond the k a stripe
	// opens from.
	Wasted  int64 `json:"shards_wasted"`
	Hedged  int64 `json:"shards_hedged"`
	Deep    int64 `json:"shards_searched"`
	Decoded int64 `json:"stripes_decoded"`
	// OverK is the shards received over the shards the stripes read
	// needed (k each): 1.0 means nothing fetched beyond need.
	OverK  float64            `json:"received_over_needed,omitempty"`
	Stored int64              `json:"shards_stored,omitempty"`
	Peers  []PeerReport       `json:"peers,omitempty"`
	Stages map[string]float64 `json:"stage_seconds,omitempty"`
}

// PeerReport is the bytes moved with one peer.
type PeerReport struct {
	Peer      string `json:"peer"`
	BytesIn   int64  `json:"bytes_in,omitempty"`
	BytesOut  int64  `json:"bytes_out,omitempty"`
	ShardsIn  int64  `json:"shards_in,omitempty"`
	ShardsOut int64  `json:"shards_out,omitempty"`
}

// Report returns the counts.
func (c *Counters) Report() Report {
	if c == nil {
		return Report{}
	}
	r := Report{Stripes: c.stripes.Load(), Asked: c.asked.Load(), Received: c.received.Load(), Local: c.local.Load(),
		Hedged: c.hedged.Load(), Deep: c.deep.Load(), Decoded: c.decoded.Load(), Stored: c.stored.Load()}
	if used := c.used.Load(); used > 0 {
		r.Wasted = max(0, r.Received-used)
		r.OverK = float64(r.Received) / float64(used)
	}
	for i := range c.stages {
		if ns := c.stages[i].Load(); ns > 0 {
			if r.Stages == nil {
				r.Stages = map[string]float64{}
			}
			r.Stages[stageNames[i]] = float64(ns) / 1e9
		}
	}
	c.mu.Lock()
	for p, f := range c.peers {
		r.Peers = append(r.Peers, PeerReport{Peer: p, BytesIn: f.in, BytesOut: f.out, ShardsIn: f.shardsIn, ShardsOut: f.shardsOut})
	}
	c.mu.Unlock()
	sort.Slice(r.Peers, func(i, j int) bool { return r.Peers[i].Peer < r.Peers[j].Peer })
	return r
}
