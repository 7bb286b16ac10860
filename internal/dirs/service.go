package dirs

import (
	"bytes"
	"context"
	"log/slog"
	"time"

	"github.com/umbra-store/umbra/internal/engine"
	"github.com/umbra-store/umbra/internal/format"
	"github.com/umbra-store/umbra/internal/kind"
	"github.com/umbra-store/umbra/internal/network"
	"github.com/umbra-store/umbra/keyring"
)

// Records is where folder records are published and found
// (network.Folders; network.LocalFolders without a daemon).
type Records interface {
	// Resolve returns the distinct valid records of a folder found, best
	// first; none: not found.
	Resolve(ctx context.Context, id [32]byte) ([]*format.Record, error)
	Publish(ctx context.Context, rec *format.Record) (network.Published, error)
}

// Aliases looks up the capability a name stands for.
type Aliases interface {
	Lookup(name string) (string, bool, error)
}

// Errors.
var (
	ErrNotFound   = kind.New(kind.NotFound, "dirs: not found")
	ErrNotDir     = kind.New(kind.NotDir, "dirs: not a folder")
	ErrIsDir      = kind.New(kind.IsDir, "dirs: is a folder")
	ErrExists     = kind.New(kind.Exists, "dirs: exists")
	ErrReadOnly   = kind.New(kind.ReadOnly, "dirs: read-only: a folder write capability is needed")
	ErrConflict   = kind.New(kind.Conflict, "dirs: other writers kept winning; try again")
	ErrNoFolder   = kind.New(kind.NotFound, "dirs: folder expired or not found (no holder or DHT peer keeps a valid record of it)")
	ErrBadPath    = kind.New(kind.Usage, "dirs: bad path")
	ErrVerifyOnly = kind.New(kind.Usage, "dirs: a verify capability cannot list or read")
)

// Defaults.
const (
	// DefaultValidity is how long a record is valid after it is signed. A
	// folder's owner or any writer renews it with each change; holders keep
	// it until then, owner or not.
	DefaultValidity = 365 * 24 * time.Hour
	// maxAttempts bounds a change's tries against other writers.
	maxAttempts = 64
	// cacheBytes bounds the decoded snapshots kept (they are immutable):
	// the largest snapshot, a folder of 10,000 small files inline, fits.
	cacheBytes = 64 << 20
	// inlineBudget: past this many bytes of inline files in one folder,
	// small files are stored as files of their own (a snapshot stays under
	// format.MaxSnapshot with room for 100,000 entries' metadata).
	inlineBudget = 48 << 20
)

// Options configure New.
type Options struct {
	K, M     int           // shards of snapshots and files; 0: the engine's default
	Validity time.Duration // 0: DefaultValidity
	Log      *slog.Logger
	// Now is the clock; nil: time.Now.
	Now func() time.Time
}

// Service is the folders of one node.
type Service struct {
	eng     *engine.Engine
	recs    Records
	aliases Aliases
	o       Options

	cache *snapCache
}

// New returns the folders over eng and recs; aliases may be nil.
func New(eng *engine.Engine, recs Records, aliases Aliases, o Options) *Service {
	if o.Validity == 0 {
		o.Validity = DefaultValidity
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Service{eng: eng, recs: recs, aliases: aliases, o: o, cache: newSnapCache(cacheBytes)}
}

// version is a folder as read: the best record, and the snapshot it points
// to — merged with the others of the same seq if writers raced.
type version struct {
	rec    *format.Record
	snap   *format.Snapshot
	ptr    format.Pointer
	merged bool // snap joins racing versions
}

// putSnapshot stores a snapshot and returns its read capability; the
// chunks it shares with prior (the version it was made from) are not
// stored again.
func (s *Service) putSnapshot(ctx context.Context, snap *format.Snapshot, prior *keyring.ReadCap) (keyring.ReadCap, error) {
	plain, err := snap.Encode()
	if err != nil {
		return keyring.ReadCap{}, err
	}
	res, err := s.eng.Put(ctx, bytes.NewReader(plain), engine.PutOptions{K: s.o.K, M: s.o.M, Prior: prior})
	if err != nil {
		return keyring.ReadCap{}, err
	}
	s.cache.put(res.Cap, snap)
	return res.Cap, nil
}

// clone copies a snapshot's entry list (entries' data is never changed in
// place, so it is shared).
func clone(s *format.Snapshot) *format.Snapshot {
	return &format.Snapshot{Parent: s.Parent, Entries: append([]format.DirEntry(nil), s.Entries...)}
}

func timeOf(ns int64) time.Time { return time.Unix(0, ns) }
