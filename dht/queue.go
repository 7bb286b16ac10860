package dht

import (
	"context"
	"sync"

	"github.com/ipfs/go-cid"
)

// Queue bounds.
const (
	queueLen  = 1 << 17 // CIDs waiting to be announced, in all
	originLen = 1 << 14 // … from one origin: one peer's STOREs fill only this
)

// fairQueue holds the CIDs waiting to be announced, per origin (the peer
// whose STORE brought the block, "" for this node's own), and serves the
// origins in turn: a peer that stores a flood of tiny blocks fills its own
// share, and another peer's blocks are still announced promptly. A push
// over a share or the total is dropped (the periodic re-announce catches
// up), unless it waits.
type fairQueue struct {
	mu     sync.Mutex
	byFrom map[string][]cid.Cid
	order  []string // origins with CIDs waiting, served round-robin
	next   int
	total  int
	busy   int           // popped, their provides not finished
	ready  chan struct{} // signalled after a push
	space  chan struct{} // signalled after a pop
}

func newFairQueue() *fairQueue {
	return &fairQueue{byFrom: map[string][]cid.Cid{}, ready: make(chan struct{}, 1), space: make(chan struct{}, 1)}
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// push queues c for from; false when from's share or the queue is full.
func (q *fairQueue) push(from string, c cid.Cid) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	l := q.byFrom[from]
	if q.total >= queueLen || len(l) >= originLen {
		return false
	}
	if len(l) == 0 {
		q.order = append(q.order, from)
	}
	q.byFrom[from] = append(l, c)
	q.total++
	signal(q.ready)
	return true
}

// pushWait queues c for from, waiting for room; false when ctx ended.
func (q *fairQueue) pushWait(ctx context.Context, from string, c cid.Cid) bool {
	for !q.push(from, c) {
		select {
		case <-q.space:
		case <-ctx.Done():
			return false
		}
	}
	return true
}

// pop takes the next CID, from the next origin in turn, waiting for one;
// false when ctx ended. The caller calls done once it has provided it.
func (q *fairQueue) pop(ctx context.Context) (cid.Cid, bool) {
	for {
		q.mu.Lock()
		if q.total > 0 {
			q.next %= len(q.order)
			from := q.order[q.next]
			l := q.byFrom[from]
			c := l[0]
			if len(l) == 1 {
				delete(q.byFrom, from)
				q.order = append(q.order[:q.next], q.order[q.next+1:]...)
			} else {
				l[0] = cid.Undef
				q.byFrom[from] = l[1:]
				q.next++
			}
			q.total--
			q.busy++
			if q.total > 0 {
				signal(q.ready) // another announcer may take the next
			}
			q.mu.Unlock()
			signal(q.space)
			return c, true
		}
		q.mu.Unlock()
		select {
		case <-q.ready:
		case <-ctx.Done():
			return cid.Undef, false
		}
	}
}

// done ends the provide of a CID pop returned.
func (q *fairQueue) done() {
	q.mu.Lock()
	q.busy--
	q.mu.Unlock()
}

// pending returns how many CIDs wait or are being provided.
func (q *fairQueue) pending() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.total + q.busy
}

// len returns how many CIDs wait.
func (q *fairQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.total
}
