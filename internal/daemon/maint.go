package daemon

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/umbra-store/umbra/internal/api"
	"github.com/umbra-store/umbra/internal/dirs"
	"github.com/umbra-store/umbra/internal/network"
	"github.com/umbra-store/umbra/internal/node"
	"github.com/umbra-store/umbra/keyring"
)

// maintenance runs the node's maintenance: over the files of its
// maintain list, one after another (each bounded by network.Maintainer's
// streams), check, repair and renew.
type maintenance struct {
	list    *node.Maintained
	aliases *node.Aliases
	dirs    *dirs.Service
	maint   *network.Maintainer
	log     *slog.Logger

	run  sync.Mutex // one run at a time
	mu   sync.Mutex
	last *api.MaintStatus
}

// maintFileLimit bounds one file's check and repair in a run: a crafted
// manifest (whoever made the capability wrote it) must not stop the
// maintenance of every other file.
const maintFileLimit = 30 * time.Minute

// loop runs maintenance every interval (±10 %) until ctx ends.
func (m *maintenance) loop(ctx context.Context, interval time.Duration) {
	for {
		jitter := time.Duration((rand.Float64()*0.2 - 0.1) * float64(interval))
		t := time.NewTimer(interval + jitter)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		st, err := m.once(ctx)
		if err != nil && ctx.Err() == nil {
			m.log.Warn("maintenance failed", "err", err)
			continue
		}
		if st.Degraded+st.Lost+st.Failed+st.Repaired > 0 {
			m.log.Info("maintenance", "files", st.Files, "repaired", st.Repaired, "degraded", st.Degraded, "lost", st.Lost, "failed", st.Failed)
		}
	}
}

// once runs maintenance over the list now.
func (m *maintenance) once(ctx context.Context) (api.MaintStatus, error) {
	m.run.Lock()
	defer m.run.Unlock()
	roots, err := m.roots(ctx)
	if err != nil {
		return api.MaintStatus{}, err
	}
	start := time.Now()
	var st api.MaintStatus
	for _, vc := range roots {
		if ctx.Err() != nil {
			return st, ctx.Err()
		}
		st.Files++
		fctx, cancel := context.WithTimeout(ctx, maintFileLimit)
		rep, err := m.maint.Repair(fctx, vc)
		cancel()
		st.Repaired += rep.Repaired
		st.Renewed += rep.Renewed
		status := rep.Status
		if err != nil {
			status = "failed"
		}
		switch status {
		case "healthy":
			st.Healthy++
			continue
		case "degraded":
			st.Degraded++
		case "lost":
			st.Lost++
		default:
			st.Failed++
		}
		if len(st.Problems) < 100 {
			text := vc.Encode()
			st.Problems = append(st.Problems, status+" "+text[:min(len(text), 24)]+"…")
		}
	}
	st.At, st.Took = time.Now().Unix(), time.Since(start).Seconds()
	m.mu.Lock()
	m.last = &st
	m.mu.Unlock()
	return st, nil
}

// roots returns what a run maintains: the files of the maintain list, and
// every file and folder snapshot under the folders of the node's aliases,
// each once.
func (m *maintenance) roots(ctx context.Context) ([]keyring.VerifyCap, error) {
	list, err := m.list.List()
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []keyring.VerifyCap
	add := func(vc keyring.VerifyCap) {
		if t := vc.Encode(); !seen[t] {
			seen[t] = true
			out = append(out, vc)
		}
	}
	for _, r := range list {
		if vc, err := keyring.ParseVerifyCap(r.Cap); err == nil {
			add(vc)
			continue
		}
		// A folder's verify capability: its tree, through the check lists.
		rs, err := m.dirs.Roots(ctx, r.Cap)
		if err != nil {
			m.log.Warn("maintenance: a folder maintained for someone", "err", err)
		}
		for _, vc := range rs {
			add(vc)
		}
	}
	as, err := m.aliases.List()
	if err != nil {
		return out, err
	}
	for _, a := range as {
		c, err := keyring.ParseCap(a.Cap)
		if err != nil {
			continue
		}
		switch c.(type) {
		case keyring.DirWriteCap, keyring.DirReadCap:
		default:
			continue
		}
		rs, err := m.dirs.Roots(ctx, a.Cap)
		if err != nil {
			m.log.Warn("maintenance: folder", "alias", a.Name, "err", err)
		}
		for _, vc := range rs {
			add(vc)
		}
	}
	return out, nil
}

// lastRun returns the last run's summary (nil: none yet).
func (m *maintenance) lastRun() *api.MaintStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.last
}

// Maintain runs maintenance now.
func (b *backend) Maintain(ctx context.Context) (api.MaintStatus, error) { return b.maint.once(ctx) }

// Remember adds a file this node's user stored to the maintain list.
func (b *backend) Remember(vc keyring.VerifyCap) {
	if err := b.maint.list.Add(vc.Encode(), "put"); err != nil {
		b.maint.log.Warn("maintain list", "err", err)
	}
}
