// Package daemon runs a node: block store, libp2p host, DHT, shard
// protocol, engine and the HTTP API, until its context ends. build makes the
// graph, bottom-up, in one function.
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

	"github.com/ipfs/boxo/bitswap"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/umbra-store/umbra/dht"
	"github.com/umbra-store/umbra/internal/api"
	"github.com/umbra-store/umbra/internal/config"
	"github.com/umbra-store/umbra/internal/dirs"
	"github.com/umbra-store/umbra/internal/engine"
	"github.com/umbra-store/umbra/internal/network"
	"github.com/umbra-store/umbra/internal/node"
	"github.com/umbra-store/umbra/internal/p2phost"
	"github.com/umbra-store/umbra/internal/placement"
	"github.com/umbra-store/umbra/internal/retrieval"
	"github.com/umbra-store/umbra/internal/shard"
	"github.com/umbra-store/umbra/keyring"
)

// InfoFile is written in the node directory while the daemon runs.
const InfoFile = "daemon.json"

// Re-announce timing: every block held is provided again first after
// reannounceFirst, then every reannounceEvery (kad-dht drops provider
// records after 48 h).
const (
	reannounceFirst = time.Minute
	reannounceEvery = 12 * time.Hour
)

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
	// ServeProcs, if above 0, is GOMAXPROCS while the daemon only serves
	// peers; a put or get for its user runs with every core (see procs).
	ServeProcs int
	// Served, if set, wraps the store the shard server serves peers from.
	// Tests inject faults through it (a store that corrupts what it
	// serves); umbra itself never sets it.
	Served func(shard.Store) shard.Store
}

// graph is a running node's network and engine.
type graph struct {
	h       host.Host
	dht     *dht.DHT
	bitswap *bitswap.Bitswap
	net     *network.Net
	eng     *engine.Engine
	dirs    *dirs.Service
	maint   *network.Maintainer
	// republish is how often kept folder records go to the DHT again.
	republish time.Duration
}

func (g *graph) close() {
	if g.bitswap != nil {
		g.bitswap.Close()
	}
	if g.dht != nil {
		g.dht.Close()
	}
	if g.h != nil {
		g.h.Close()
	}
}

// build makes the node's network and engine, bottom-up: the host, the DHT
// on it, the shard server and client, bitswap, retrieval, placement, the
// engine's network and the engine. Everything runs until ctx ends; close
// stops it.
func build(ctx context.Context, n *node.Node, cfg config.Config, o Options, log *slog.Logger) (*graph, error) {
	g := &graph{}
	var err error
	shardLimit := p2phost.ProtocolLimit{ID: shard.Protocol, Inbound: shard.MaxStreams, InboundPerPeer: shard.MaxStreamsPerPeer}
	if g.h, err = p2phost.New(p2phost.FromConfig(n.Keys.Identity.Private(), cfg.Network, shardLimit)); err != nil {
		return nil, err
	}
	validity, age, republish, err := cfg.Folders.Durations()
	if err != nil {
		g.close()
		return nil, err
	}
	g.republish = republish
	if g.dht, err = dht.New(ctx, g.h, n.Store.Datastore(), dht.WithLogger(log), dht.WithRecordAge(age)); err != nil {
		g.close()
		return nil, err
	}
	accept, err := acceptFunc(cfg.Storage)
	if err != nil {
		g.close()
		return nil, err
	}
	var served shard.Store = n.Store
	if o.Served != nil {
		served = o.Served(served)
	}
	shard.NewServer(g.h, served, shard.ServerOptions{Accept: accept, Stored: g.dht.AnnounceFrom, Records: g.dht, Log: log})
	client := shard.NewClient(g.h)
	g.bitswap = retrieval.NewBitswap(ctx, g.h, g.dht, n.Store)
	fetch := retrieval.New(g.h, n.Store, client, g.dht, g.bitswap, log)
	place := placement.Deps{Self: g.h.ID(), Remote: client, Local: n.Store, Ann: g.dht, Log: log, LeaseKey: n.Keys.Secrets.LeaseKey()}
	g.net = network.New(g.h, place, fetch)
	length, _, _, _ := cfg.Leases.Durations() // validated
	g.eng = engine.New(n.Store, n.Keys.Secrets, engine.WithLogger(log), engine.WithNetwork(g.net), engine.WithLeaseLength(length))
	k, m, _ := config.ParseShards(cfg.Put.Shards) // validated
	g.maint = network.NewMaintainer(g.net, g.eng, client, n.Store, n.Keys.Secrets.LeaseKey(), length)
	folders := network.NewFolders(ctx, g.net, client, g.dht)
	g.dirs = dirs.New(g.eng, folders, node.OpenAliases(n.Path), dirs.Options{K: k, M: m, Validity: validity, Log: log})
	return g, nil
}

// acceptFunc returns who may store on this node (nil: anyone).
func acceptFunc(s config.Storage) (func(peer.ID) bool, error) {
	if s.Accept != "allowlist" {
		return nil, nil
	}
	allowed := map[peer.ID]bool{}
	for _, a := range s.AcceptPeers {
		id, err := peer.Decode(a)
		if err != nil {
			return nil, fmt.Errorf("daemon: Storage.AcceptPeers: %q: %w", a, err)
		}
		allowed[id] = true
	}
	return func(p peer.ID) bool { return allowed[p] }, nil
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
	g, err := build(ctx, n, cfg, o, log)
	if err != nil {
		return err
	}
	defer g.close()
	_, gcEvery, grace, _ := cfg.Leases.Durations() // validated
	b := newBackend(n, g, cfg, o, grace, log)
	maintEvery, _ := cfg.Maintenance.Every() // validated

	sock := filepath.Join(o.Path, api.SocketName)
	srv, err := api.Listen(sock, b, log)
	if err != nil {
		return err
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve() }()
	defer os.Remove(sock)

	go bootstrap(ctx, g.h, g.dht, cfg.Network.Bootstrap, log)
	go g.dht.Reannounce(ctx, reannounceFirst, reannounceEvery, n.Store.AllKeysChan)
	go g.dht.RepublishFolders(ctx, min(reannounceFirst, g.republish), g.republish)
	go refreshFolders(ctx, g.dirs, node.OpenAliases(n.Path), log)
	go collect(ctx, n.Store, gcEvery, grace, log)
	go b.maint.loop(ctx, maintEvery)

	info := Info{PID: os.Getpid(), PeerID: g.h.ID().String(), Addrs: addrs(g.h), Socket: sock}
	if err := writeInfo(filepath.Join(o.Path, InfoFile), info); err != nil {
		return err
	}
	defer os.Remove(filepath.Join(o.Path, InfoFile))
	log.Info("umbra daemon running", "peer", g.h.ID().String(), "addrs", info.Addrs, "api", sock)

	select {
	case <-stopped.Done():
	case err := <-serveErr:
		if err != nil {
			return fmt.Errorf("daemon: api: %w", err)
		}
	}
	log.Info("shutting down")
	// Drives first: their requests last as long as they do, and what was
	// written to them is published while the network still runs.
	b.mounts.closeAll(time.Minute)
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		// Requests still running after the grace period are cut off before
		// the store closes under them (the store refuses calls after it
		// closes, so a handler still running gets an error, never a closed
		// database).
		log.Warn("shutdown: operations still running after 10 s are cut off", "err", err)
		_ = srv.Close()
	}
	stopNet()
	return nil
}

// Folder renewal: the folders this node's aliases can write are looked
// at first after refreshFirst, then every refreshEvery.
const (
	refreshFirst = 2 * time.Minute
	refreshEvery = 6 * time.Hour
)

// refreshFolders renews the records of the folders the node's aliases can
// write before they expire (dirs.Service.Refresh), until ctx ends.
func refreshFolders(ctx context.Context, d *dirs.Service, aliases *node.Aliases, log *slog.Logger) {
	t := time.NewTimer(refreshFirst)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		as, err := aliases.List()
		if err != nil {
			log.Warn("folder refresh: aliases", "err", err)
		}
		for _, a := range as {
			c, err := keyring.ParseCap(a.Cap)
			w, ok := c.(keyring.DirWriteCap)
			if err != nil || !ok {
				continue
			}
			if n, err := d.Refresh(ctx, w); err != nil || n > 0 {
				log.Info("folder records renewed", "alias", a.Name, "renewed", n, "err", err)
			}
		}
		t.Reset(refreshEvery)
	}
}

// bootstrap connects to the bootstrap peers, retrying those that fail for a
// while (testnet starts nodes one after another), then bootstraps the DHT.
func bootstrap(ctx context.Context, h host.Host, d interface{ Bootstrap(context.Context) error }, addrs []string, log *slog.Logger) {
	pending := append([]string(nil), addrs...)
	for attempt := 0; len(pending) > 0 && attempt < 30; attempt++ {
		var left []string
		for _, a := range pending {
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			if err := p2phost.Connect(cctx, h, []string{a}); err != nil {
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
