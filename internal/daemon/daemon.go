// Package daemon runs a node: block store, libp2p host, DHT, shard protocol,
// engine and the HTTP API, until its context ends.
package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/umbra-store/umbra/internal/api"
	"github.com/umbra-store/umbra/internal/engine"
	"github.com/umbra-store/umbra/internal/node"
	"github.com/umbra-store/umbra/internal/p2p"
)

// InfoFile is written in the node directory while the daemon runs.
const InfoFile = "daemon.json"

// Info is the content of InfoFile.
type Info struct {
	PID    int      `json:"pid"`
	PeerID string   `json:"peer_id"`
	Addrs  []string `json:"addrs"` // full multiaddrs, ending in /p2p/PEERID
	Socket string   `json:"socket"`
}

// Options tune Run; empty fields take the config's values.
type Options struct {
	Path      string
	Listen    []string
	Bootstrap []string
	Log       *slog.Logger
	// CorruptServedShards is fault injection for tests: every block served
	// to a peer has one bit flipped.
	CorruptServedShards bool
	// ServeProcs, if above 0, is GOMAXPROCS while the daemon only serves
	// peers; a put or get for its user runs with every core (see procs).
	ServeProcs int
}

type backend struct {
	n     *node.Node
	h     host.Host
	net   *p2p.Net
	svc   *p2p.Service
	eng   *engine.Engine
	quota int64
	procs *procs
}

func (b *backend) Engine() *engine.Engine { return b.eng }
func (b *backend) DefaultShards() string  { return b.n.Config.Put.Shards }
func (b *backend) FewPeersErr() error     { return p2p.ErrFewPeers }
func (b *backend) Working() func()        { return b.procs.begin() }

func (b *backend) Status(ctx context.Context) (api.Status, error) {
	st, err := b.n.Store.Stats(ctx)
	if err != nil {
		return api.Status{}, err
	}
	return api.Status{
		PeerID: b.h.ID().String(), Addrs: addrs(b.h), StorageUsed: st.Bytes, StorageQuota: b.quota,
		Blocks: st.Blocks, Peers: len(b.net.ShardPeers()), PID: os.Getpid(),
	}, nil
}

func (b *backend) Peers(ctx context.Context) []api.Peer {
	var out []api.Peer
	for _, p := range b.h.Network().Peers() {
		ap := api.Peer{ID: p.String(), LatencyMS: float64(b.h.Peerstore().LatencyEWMA(p).Microseconds()) / 1000}
		for _, c := range b.h.Network().ConnsToPeer(p) {
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

// Run runs the daemon until ctx ends, then shuts down cleanly.
func Run(ctx context.Context, o Options) error {
	// The network runs on its own context, cancelled only after the API has
	// let running puts and gets finish: they need bitswap, the DHT and the
	// announcer until the end.
	stopped := ctx
	ctx, stopNet := context.WithCancel(context.WithoutCancel(ctx))
	defer stopNet()
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n, err := node.Open(o.Path, log)
	if err != nil {
		return err
	}
	defer n.Close()
	cfg := n.Config
	if len(o.Listen) > 0 {
		cfg.Network.Listen = o.Listen
	}
	cfg.Network.Bootstrap = append(cfg.Network.Bootstrap, o.Bootstrap...)
	if err := cfg.Validate(); err != nil {
		return err
	}
	h, err := p2p.NewHost(p2p.HostOptionsFromConfig(n.Keys.Identity.Private(), cfg.Network))
	if err != nil {
		return err
	}
	defer h.Close()
	d, err := p2p.NewDHT(ctx, h, n.Store)
	if err != nil {
		return err
	}
	defer d.Close()

	var accept func(peer.ID) bool
	if cfg.Storage.Accept == "allowlist" {
		allowed := map[peer.ID]bool{}
		for _, s := range cfg.Storage.AcceptPeers {
			id, err := peer.Decode(s)
			if err != nil {
				return fmt.Errorf("daemon: Storage.AcceptPeers: %q: %w", s, err)
			}
			allowed[id] = true
		}
		accept = func(p peer.ID) bool { return allowed[p] }
	}
	svc, err := p2p.NewService(ctx, h, n.Store, p2p.ServiceOptions{
		MaxBytes: cfg.Storage.MaxBytes, Accept: accept, Log: log,
		CorruptServedShards: o.CorruptServedShards,
	})
	if err != nil {
		return err
	}
	netw := p2p.NewNet(ctx, h, d, n.Store, svc, log)
	svc.SetStored(netw.Announce)
	bs := p2p.NewBitswap(ctx, h, d, n.Store)
	defer bs.Close()
	netw.SetBitswap(bs)
	eng := engine.New(n.Store, n.Keys.Secrets, engine.WithLogger(log), engine.WithNetwork(netw))
	b := &backend{n: n, h: h, net: netw, svc: svc, eng: eng, quota: cfg.Storage.MaxBytes, procs: newProcs(o.ServeProcs)}

	sock := filepath.Join(o.Path, api.SocketName)
	srv, err := api.Listen(sock, b, log)
	if err != nil {
		return err
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve() }()
	defer os.Remove(sock)

	go bootstrap(ctx, h, d, cfg.Network.Bootstrap, log)
	go netw.Reannounce(ctx, time.Minute, 12*time.Hour)

	info := Info{PID: os.Getpid(), PeerID: h.ID().String(), Addrs: addrs(h), Socket: sock}
	if err := writeInfo(filepath.Join(o.Path, InfoFile), info); err != nil {
		return err
	}
	defer os.Remove(filepath.Join(o.Path, InfoFile))
	log.Info("umbra daemon running", "peer", h.ID().String(), "addrs", info.Addrs, "api", sock)

	select {
	case <-stopped.Done():
	case err := <-serveErr:
		if err != nil {
			return fmt.Errorf("daemon: api: %w", err)
		}
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		// Requests still running after the grace period are cut off before
		// the store closes under them.
		// (The store refuses calls after it closes, so a handler still
		// running gets an error, never a closed database.)
		_ = srv.Close()
	}
	stopNet()
	return nil
}

// bootstrap connects to the bootstrap peers, retrying those that fail for a
// while (testnet starts nodes one after another), then bootstraps the DHT.
func bootstrap(ctx context.Context, h host.Host, d interface{ Bootstrap(context.Context) error }, addrs []string, log *slog.Logger) {
	pending := append([]string(nil), addrs...)
	for attempt := 0; len(pending) > 0 && attempt < 30; attempt++ {
		var left []string
		for _, a := range pending {
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			if err := p2p.Connect(cctx, h, []string{a}); err != nil {
				left = append(left, a)
				if attempt == 0 {
					log.Info("bootstrap peer not reachable yet", "addr", a, "err", err)
				}
			}
			cancel()
		}
		pending = left
		if len(pending) == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
	if len(pending) > 0 {
		log.Warn("bootstrap peers unreachable", "addrs", pending)
	}
	if err := d.Bootstrap(ctx); err != nil && !errors.Is(err, context.Canceled) {
		log.Warn("DHT bootstrap", "err", err)
	}
}

func writeInfo(path string, info Info) error {
	raw, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, raw, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// ReadInfo reads a running daemon's InfoFile.
func ReadInfo(dir string) (Info, error) {
	var info Info
	raw, err := os.ReadFile(filepath.Join(dir, InfoFile))
	if err != nil {
		return info, err
	}
	return info, json.Unmarshal(raw, &info)
}
