package blockstore

import (
	"context"
	"time"
)

// Background work (GC's punches, compaction's copies) is held to a rate,
// a lower one while the store serves reads: on a node that also answers
// gets, freeing a gigabyte at full speed takes the CPU (the kernel drops
// the punched range's page cache) that the gets were using. A read is
// anything that entered the read gate (a get, a put's check of a block it
// holds) since the work last waited.
const (
	punchPiece      = 32 << 20  // bytes one fallocate frees at most
	punchBusyRate   = 192 << 20 // bytes per second punched while reads run (idle: unbounded)
	compactRate     = 64 << 20  // bytes per second a compaction copies
	compactBusyRate = 16 << 20  // ... while reads run
)

// pacer holds work to idle bytes per second while no read entered the
// gate since its last wait, and to busy otherwise; a rate of 0 is
// unbounded. A nil pacer never waits.
type pacer struct {
	gate       *readGate
	closing    <-chan struct{} // the store's: Close does not wait out a pace
	idle, busy float64
	seen       uint64
	due        time.Time
}

func (s *Store) newPacer(idle, busy float64) *pacer {
	return &pacer{gate: s.gate, closing: s.closing, idle: idle, busy: busy, seen: s.gate.reads.Load()}
}

// wait accounts for n bytes of work done and sleeps until the rate allows
// more, or ctx ends, or the store closes.
func (p *pacer) wait(ctx context.Context, n int) error {
	if p == nil {
		return nil
	}
	rate := p.idle
	if r := p.gate.reads.Load(); r != p.seen {
		p.seen, rate = r, p.busy
	}
	now := time.Now()
	if p.due.Before(now) {
		p.due = now // no credit for time spent waiting elsewhere
	}
	if rate <= 0 {
		return nil
	}
	p.due = p.due.Add(time.Duration(float64(n) / rate * float64(time.Second)))
	d := p.due.Sub(now)
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-p.closing:
		return ErrClosed
	}
}
