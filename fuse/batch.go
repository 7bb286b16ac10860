package fuse

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sync"
)

// Files of at most BatchFile bytes (and over format.MaxInline: smaller ones
// live in their folder's snapshot) are uploaded in batches: a file of its
// own makes every holder sync, and for small files that costs more than
// storing them. A batch takes what closed files are queued, up to
// batchFiles and batchBytes; batchWorkers are in flight at once, so files
// closing during one batch make up the next.
const (
	BatchFile    = 1 << 20 // api.MaxBatchFile
	batchFiles   = 128
	batchBytes   = 16 << 20
	batchWorkers = 2
)

// smallPut is one queued file.
type smallPut struct {
	r    *io.SectionReader
	ref  string
	err  error
	done chan struct{}
}

// batcher queues small files for the batch workers.
type batcher struct {
	mu   sync.Mutex
	q    []*smallPut
	wake chan struct{}
}

func newBatcher() *batcher { return &batcher{wake: make(chan struct{}, 1)} }

func (b *batcher) signal() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// take removes the next batch from the queue.
func (b *batcher) take() []*smallPut {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, size := 0, int64(0)
	for n < len(b.q) && n < batchFiles && (n == 0 || size+b.q[n].r.Size() <= batchBytes) {
		size += b.q[n].r.Size()
		n++
	}
	out := b.q[:n:n]
	b.q = b.q[n:]
	if len(b.q) > 0 {
		b.signal() // for the other worker
	}
	return out
}

// putSmall uploads r in a batch and returns its ref.
func (m *mount) putSmall(ctx context.Context, r *io.SectionReader) (string, error) {
	p := &smallPut{r: r, done: make(chan struct{})}
	m.batch.mu.Lock()
	m.batch.q = append(m.batch.q, p)
	m.batch.mu.Unlock()
	m.batch.signal()
	select {
	case <-p.done:
		return p.ref, p.err
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// batchWorker uploads batches until the mount ends.
func (m *mount) batchWorker() {
	for {
		select {
		case <-m.bg.Done():
			return
		case <-m.batch.wake:
		}
		for ps := m.batch.take(); len(ps) > 0; ps = m.batch.take() {
			rs := make([]*io.SectionReader, len(ps))
			for i, p := range ps {
				rs[i] = p.r
			}
			var refs []string
			var err error
			// Tried twice: a peer that fails the durability point fails
			// the batch, and the next one places around it.
			for try := 0; try < 2 && m.bg.Err() == nil; try++ {
				if refs, err = m.w.PutFiles(m.bg, rs); err == nil {
					break
				}
			}
			if err == nil && m.bg.Err() != nil {
				err = m.bg.Err()
			}
			if err == nil && (len(refs) != len(ps) || slices.Contains(refs, "")) {
				err = fmt.Errorf("fuse: %d files stored for %d sent", len(refs), len(ps))
			}
			for i, p := range ps {
				if err != nil {
					p.err = err
				} else {
					p.ref = refs[i]
				}
				close(p.done)
			}
		}
	}
}
