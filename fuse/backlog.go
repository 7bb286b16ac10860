package fuse

import (
	"context"
	"sync"
)

// maxBacklog bounds the bytes of closed files held in memory until their
// upload ends (files of at most BatchFile are staged in memory): a close
// past it waits. Two batches in flight and one filling are 48 MiB, so a
// cp -r into a store that keeps up never waits, and one into a slow store
// (a remote daemon, a busy network) is held to its pace instead of growing
// the daemon's heap by a file's size per file.
const maxBacklog = 48 << 20

// backlog counts the bytes of in-memory stages whose upload is in flight.
// Its zero value is ready.
type backlog struct {
	mu    sync.Mutex
	n     int64
	freed chan struct{} // closed (and dropped) when n goes down
}

func (b *backlog) add(n int64) {
	b.mu.Lock()
	b.n += n
	b.mu.Unlock()
}

func (b *backlog) done(n int64) {
	b.mu.Lock()
	b.n -= n
	if b.freed != nil {
		close(b.freed)
		b.freed = nil
	}
	b.mu.Unlock()
}

// wait returns once the backlog is at most maxBacklog, or ctx ends.
func (b *backlog) wait(ctx context.Context) error {
	for {
		b.mu.Lock()
		if b.n <= maxBacklog {
			b.mu.Unlock()
			return nil
		}
		if b.freed == nil {
			b.freed = make(chan struct{})
		}
		ch := b.freed
		b.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
