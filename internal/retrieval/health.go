package retrieval

import (
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Peer health timings and bounds.
const (
	badPeerPenalty = 10 * time.Minute // a peer that served bytes not matching their CID is avoided
	downPenalty    = 30 * time.Second // an unreachable peer is skipped
	// maxPeerNotes bounds each list: hints can name any number of peer IDs,
	// and an entry is kept only while it matters.
	maxPeerNotes = 4096
)

// health is what this node has seen of peers lately.
type health struct {
	mu   sync.Mutex
	bad  map[peer.ID]time.Time // served bytes that failed their CID
	down map[peer.ID]time.Time // could not be reached
}

func newHealth() *health {
	return &health{bad: map[peer.ID]time.Time{}, down: map[peer.ID]time.Time{}}
}

// avoid reports whether p is to be passed over now.
func (h *health) avoid(p peer.ID) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if t, ok := h.bad[p]; ok && time.Since(t) < badPeerPenalty {
		return true
	}
	t, ok := h.down[p]
	return ok && time.Since(t) < downPenalty
}

func (h *health) markBad(p peer.ID) {
	h.mu.Lock()
	note(h.bad, p, badPeerPenalty)
	h.mu.Unlock()
}

func (h *health) markDown(p peer.ID) {
	h.mu.Lock()
	note(h.down, p, downPenalty)
	h.mu.Unlock()
}

// note records p in a list whose entries matter for penalty, keeping it at
// most maxPeerNotes long: expired entries go first, then the oldest. Called
// with the lock held.
func note(m map[peer.ID]time.Time, p peer.ID, penalty time.Duration) {
	now := time.Now()
	if _, ok := m[p]; !ok && len(m) >= maxPeerNotes {
		var oldest peer.ID
		var at time.Time
		for q, t := range m {
			if now.Sub(t) >= penalty {
				delete(m, q)
			} else if oldest == "" || t.Before(at) {
				oldest, at = q, t
			}
		}
		if len(m) >= maxPeerNotes {
			delete(m, oldest)
		}
	}
	m[p] = now
}
