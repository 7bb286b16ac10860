package blockstore

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestPacer: background work runs unbounded (or at its idle rate) while
// no read enters the gate, at the busy rate once one does; a pace ends
// with its context and with the store.
func TestPacer(t *testing.T) {
	s := openT(t, t.TempDir())
	ctx := context.Background()
	p := s.newPacer(0, 1<<20) // idle: unbounded; busy: 1 MiB/s
	if err := p.wait(ctx, 1<<30); err != nil {
		t.Fatal(err)
	}
	if time.Until(p.due) > 0 {
		t.Fatalf("no read ran, yet the work is held until %v", p.due)
	}
	s.gate.leave(s.gate.enter())
	before := time.Now()
	if err := p.wait(ctx, 4<<10); err != nil { // 4 KiB at 1 MiB/s: 3.9 ms
		t.Fatal(err)
	}
	if held := p.due.Sub(before); held < 3900*time.Microsecond {
		t.Fatalf("a read ran, and 4 KiB of work was held %v", held)
	}
	// A long pace ends with its context, and with the store.
	s.gate.leave(s.gate.enter())
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := p.wait(cctx, 1<<30); !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled pace: %v", err)
	}
	s.gate.leave(s.gate.enter())
	done := make(chan error)
	go func() { done <- p.wait(ctx, 1<<30) }()
	s.Close()
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("a pace as the store closes: %v", err)
	}
	var none *pacer
	if err := none.wait(cctx, 1<<30); err != nil {
		t.Fatal(err)
	}
}
