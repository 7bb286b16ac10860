package shard

import (
	"context"
	"errors"
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/sync/semaphore"
)

// The shard service's memory budget: payload bytes of requests being read
// and of replies being written, held at once.
const (
	maxInflight = 64 << 20 // bytes, over every stream of every peer
	// maxPeerInflight is one peer's share: a peer that stalls its streams
	// (sends headers slowly, never reads its replies) holds at most this
	// much, and leaves the rest for everyone else.
	maxPeerInflight = 16 << 20 // bytes
	// inflightMin: smaller payloads (requests without data, answers) are
	// not counted; the resource manager's stream limits bound them.
	inflightMin = 16 << 10 // bytes
)

// errBusy: a request waited streamTimeout for its share of the budget.
var errBusy = errors.New("p2p: too many requests in flight")

// budget caps the payload bytes the shard service holds, in all and per
// peer. A request (or reply) waits for room, at most as long as its context
// allows, then fails with errBusy.
type budget struct {
	all     *semaphore.Weighted
	perPeer int64

	mu    sync.Mutex
	peers map[peer.ID]*peerBudget // peers holding or waiting for bytes
}

type peerBudget struct {
	sem   *semaphore.Weighted
	users int // acquisitions held or waiting; the entry goes at 0
}

func newBudget(all, perPeer int64) *budget {
	return &budget{all: semaphore.NewWeighted(all), perPeer: perPeer, peers: map[peer.ID]*peerBudget{}}
}

// acquire takes n bytes for p; release gives them back. Sizes below
// inflightMin cost nothing. n is at most the per-peer share (callers bound
// it by the frame cap, below maxPeerInflight).
func (b *budget) acquire(ctx context.Context, p peer.ID, n int) (release func(), err error) {
	if n < inflightMin {
		return func() {}, nil
	}
	w := int64(n)
	b.mu.Lock()
	pb := b.peers[p]
	if pb == nil {
		pb = &peerBudget{sem: semaphore.NewWeighted(b.perPeer)}
		b.peers[p] = pb
	}
	pb.users++
	b.mu.Unlock()
	done := func() {
		b.mu.Lock()
		if pb.users--; pb.users == 0 {
			delete(b.peers, p)
		}
		b.mu.Unlock()
	}
	// The peer's share first: a peer over its share waits without taking
	// anything from the others.
	if err := pb.sem.Acquire(ctx, w); err != nil {
		done()
		return nil, errBusy
	}
	if err := b.all.Acquire(ctx, w); err != nil {
		pb.sem.Release(w)
		done()
		return nil, errBusy
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			b.all.Release(w)
			pb.sem.Release(w)
			done()
		})
	}, nil
}
