package daemon

import (
	"context"
	"log/slog"
	"time"

	"github.com/umbra-store/umbra/blockstore"
	"github.com/umbra-store/umbra/internal/network"
)

// collect deletes the blocks whose leases all expired more than grace
// ago, every interval, until ctx ends.
func collect(ctx context.Context, st *blockstore.Store, interval, grace time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s, err := st.Collect(ctx, time.Now(), grace, blockstore.DefaultMinLive)
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn("garbage collection failed", "err", err)
		case s.Leases > 0 || s.Packs > 0:
			log.Info("garbage collected", "leases", s.Leases, "blocks", s.Blocks, "bytes", s.Bytes, "packs", s.Packs, "reclaimed", s.Reclaimed)
		}
	}
}

// GC collects expired blocks now (their bytes freed at once) and compacts
// the packs at most half live.
func (b *backend) GC(ctx context.Context) (blockstore.GCStats, error) {
	return b.n.Store.Collect(ctx, time.Now(), b.grace, blockstore.DefaultMinLive)
}

// Maintainer checks and repairs files.
func (b *backend) Maintainer() *network.Maintainer { return b.g.maint }
