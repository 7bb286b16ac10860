package dht

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	kad "github.com/libp2p/go-libp2p-kad-dht"
	record "github.com/libp2p/go-libp2p-record"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/core/routing"
)

// ProtocolPrefix is the prefix of umbra's DHT protocol (/umbra/kad/1.0.0).
const ProtocolPrefix = "/umbra"

// kadProtocol is the DHT's protocol, as kad names it from the prefix.
const kadProtocol = protocol.ID(ProtocolPrefix + "/kad/1.0.0")

// Announcement timing defaults.
const (
	// DefaultQuiet: an announcement waits until no block has been stored
	// here for this long, so that announcing never slows a put down.
	DefaultQuiet = time.Second
	// DefaultMaxWait bounds that wait: a peer storing a tiny block every
	// second must not be able to stop every announcement.
	DefaultMaxWait = 10 * time.Second
	// DefaultPace is the pause after each provide, per announcer (2): at
	// most 50 provides/s in all.
	DefaultPace = 40 * time.Millisecond
)

const (
	announcers   = 2
	provideLimit = 30 * time.Second // one Provide
)

// DHT is the node's DHT: kad-dht plus the announce queue.
type DHT struct {
	kad    *kad.IpfsDHT
	keeper *Keeper
	log    *slog.Logger
	queue  *fairQueue
	timing
	lastStore atomicTime
	prov      providing // provide.go
}

// timing are the announcement timings (Option WithAnnounceTiming).
type timing struct{ quiet, maxWait, pace time.Duration }

type config struct {
	recordAge   time.Duration
	log         *slog.Logger
	validators  map[string]record.Validator
	recordLimit int64
	timing
}

// Option configures New.
type Option func(*config)

// WithLogger sets the logger. Default: discard.
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.log = l } }

// WithValidator registers a record validator for keys /ns/…: only records
// it accepts are stored or returned, and its Select picks the best of
// several. Only namespaces registered here are accepted: kad-dht's default
// /pk and /ipns ones are not (umbra uses neither, and each let any peer
// store records here). Default: none.
func WithValidator(ns string, v record.Validator) Option {
	return func(c *config) { c.validators[ns] = v }
}

// WithRecordAge sets how long DHT peers keep a value record (folder
// records) after it was put: kad-dht's MaxRecordAge. Default: kad-dht's,
// 36 h.
func WithRecordAge(d time.Duration) Option { return func(c *config) { c.recordAge = d } }

// WithRecordLimit bounds the bytes of records (provider and value records,
// keys included) the DHT keeps in its datastore; a record past it is
// refused. Default DefaultRecordLimit.
func WithRecordLimit(n int64) Option { return func(c *config) { c.recordLimit = n } }

// WithAnnounceTiming sets how long an announcement waits for a quiet moment
// (quiet, at most maxWait) and the pause after each provide. Defaults:
// DefaultQuiet, DefaultMaxWait, DefaultPace.
func WithAnnounceTiming(quiet, maxWait, pace time.Duration) Option {
	return func(c *config) { c.timing = timing{quiet, maxWait, pace} }
}

// New starts the DHT on h, in server mode, with its records in store, and
// the announcers, which run until ctx ends.
func New(ctx context.Context, h host.Host, store ds.Batching, opts ...Option) (*DHT, error) {
	c := config{log: slog.New(slog.DiscardHandler), validators: map[string]record.Validator{FolderNamespace: FolderValidator{}},
		recordLimit: DefaultRecordLimit, timing: timing{DefaultQuiet, DefaultMaxWait, DefaultPace}}
	for _, o := range opts {
		o(&c)
	}
	limited, err := limitRecords(ctx, store, c.recordLimit)
	if err != nil {
		return nil, err
	}
	kopts := []kad.Option{
		// NB: neither the dual DHT nor public-address filters: they break
		// loopback and LAN networks.
		kad.ProtocolPrefix(ProtocolPrefix),
		kad.Mode(kad.ModeServer),
		kad.Datastore(limited),
		kad.Validator(record.NamespacedValidator(c.validators)),
	}
	if c.recordAge > 0 {
		kopts = append(kopts, kad.MaxRecordAge(c.recordAge))
	}
	k, err := kad.New(h, kopts...)
	if err != nil {
		return nil, fmt.Errorf("dht: start: %w", err)
	}
	d := &DHT{kad: k, log: c.log, queue: newFairQueue(), timing: c.timing,
		keeper: NewKeeper(limited)}
	if err := d.newProviding(); err != nil {
		k.Close()
		return nil, fmt.Errorf("dht: start: %w", err)
	}
	for range announcers {
		go d.announcer(ctx)
	}
	return d, nil
}

// Close stops the DHT.
func (d *DHT) Close() error {
	d.kad.Host().Network().StopNotify(d.prov.notifiee)
	d.prov.sender.close()
	return d.kad.Close()
}

// Bootstrap fills the routing table from the connected peers.
func (d *DHT) Bootstrap(ctx context.Context) error { return d.kad.Bootstrap(ctx) }

var _ routing.ContentDiscovery = (*DHT)(nil)

// FindProvidersAsync searches for up to n peers that announced c.
func (d *DHT) FindProvidersAsync(ctx context.Context, c cid.Cid, n int) <-chan peer.AddrInfo {
	return d.kad.FindProvidersAsync(ctx, c, n)
}

// PutValue stores a record under key on this node and the closest peers;
// a validator must accept it.
func (d *DHT) PutValue(ctx context.Context, key string, value []byte) error {
	return d.kad.PutValue(ctx, key, value)
}

// GetValue returns the best record for key that the DHT finds.
func (d *DHT) GetValue(ctx context.Context, key string) ([]byte, error) {
	return d.kad.GetValue(ctx, key)
}
