package daemon

import (
	"context"
	"log/slog"
	"os"
	"time"

	"github.com/libp2p/go-libp2p/core/host"

	"github.com/umbra-store/umbra/internal/api"
	"github.com/umbra-store/umbra/internal/config"
	"github.com/umbra-store/umbra/internal/dirs"
	"github.com/umbra-store/umbra/internal/engine"
	"github.com/umbra-store/umbra/internal/node"
	"github.com/umbra-store/umbra/internal/xfer"
)

// backend is what the API serves from.
type backend struct {
	n      *node.Node
	g      *graph
	quota  int64
	procs  *procs
	grace  time.Duration // GC's
	maint  *maintenance
	mounts *mounts
	xfers  xfer.Counters
}

var _ api.Backend = (*backend)(nil)

func newBackend(n *node.Node, g *graph, cfg config.Config, o Options, grace time.Duration, log *slog.Logger) *backend {
	b := &backend{n: n, g: g, quota: cfg.Storage.MaxBytes, procs: newProcs(o.ServeProcs), grace: grace,
		maint: &maintenance{list: node.OpenMaintained(n.Path), aliases: node.OpenAliases(n.Path), dirs: g.dirs, maint: g.maint, log: log}}
	b.mounts = newMounts(g, b.procs, &b.xfers, o.Path, cfg.Put.Shards, log)
	return b
}

func (b *backend) Engine() *engine.Engine    { return b.g.eng }
func (b *backend) Dirs() *dirs.Service       { return b.g.dirs }
func (b *backend) DefaultShards() string     { return b.n.Config.Put.Shards }
func (b *backend) Working() func()           { return b.procs.begin() }
func (b *backend) Transfers() *xfer.Counters { return &b.xfers }

func (b *backend) Mount(ctx context.Context, req api.MountRequest, ready func(api.MountStatus)) error {
	return b.mounts.Mount(ctx, req, ready)
}

func (b *backend) Unmount(ctx context.Context, dir string) error { return b.mounts.Unmount(ctx, dir) }

// Status reports the store's quota counter (every write path counts in
// it) and its block count.
func (b *backend) Status(ctx context.Context) (api.Status, error) {
	used, err := b.n.Store.Used(ctx)
	if err != nil {
		return api.Status{}, err
	}
	st, err := b.n.Store.Stats(ctx)
	if err != nil {
		return api.Status{}, err
	}
	return api.Status{
		PeerID: b.g.h.ID().String(), Addrs: addrs(b.g.h), StorageUsed: used, StorageQuota: b.quota,
		Blocks: st.Blocks, Peers: len(b.g.net.ShardPeers()), PID: os.Getpid(),
		Maintenance: b.maint.lastRun(), Transfers: b.xfers.Report(), Announcing: b.g.dht.Announcing(),
	}, nil
}

func (b *backend) Peers(ctx context.Context) []api.Peer {
	var out []api.Peer
	h := b.g.h
	for _, p := range h.Network().Peers() {
		ap := api.Peer{ID: p.String(), LatencyMS: float64(h.Peerstore().LatencyEWMA(p).Microseconds()) / 1000}
		for _, c := range h.Network().ConnsToPeer(p) {
			ap.Addrs = append(ap.Addrs, c.RemoteMultiaddr().String())
		}
		out = append(out, ap)
	}
	return out
}

func addrs(h host.Host) []string {
	var out []string
	for _, a := range h.Addrs() {
		out = append(out, a.String()+"/p2p/"+h.ID().String())
	}
	return out
}
