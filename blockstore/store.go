package blockstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	boxobs "github.com/ipfs/boxo/blockstore"
	mh "github.com/multiformats/go-multihash"

	"github.com/umbra-store/umbra/internal/kind"
)

// Errors. A missing block is reported as ipld.ErrNotFound, as boxo expects.
var (
	// ErrHashMismatch is returned by Put, PutMany and PutManyDeferred for a
	// block whose bytes do not hash to its CID, and by the reads for a
	// stored value that fails its checksum.
	ErrHashMismatch = kind.New(kind.Corrupt, "blockstore: block does not match its CID")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("blockstore: closed")
	// ErrTooLarge is returned by GetInto when its get refuses the block's
	// size.
	ErrTooLarge = errors.New("blockstore: block larger than the reader accepts")
	// ErrFull is returned by the Put calls when the blocks would take the
	// store past its quota (WithQuota).
	ErrFull = kind.New(kind.Full, "blockstore: storage quota reached")
	// ErrCIDForm is returned by Put, PutMany, PutManyDeferred and CheckCID
	// for a CID of another form than those umbra writes: CIDv1, raw codec,
	// full 32-byte SHA-256 or BLAKE3 digest. Get, GetSize and Has answer
	// such a CID as not found.
	ErrCIDForm = kind.New(kind.Usage, "blockstore: unsupported CID (umbra stores CIDv1, raw, 32-byte sha2-256 or blake3 blocks only)")
)

const blockPrefix = 'b'

// Store is a Pebble-backed block store.
type Store struct {
	db    *pebble.DB
	packs *packs

	// mu is held shared by every operation for its whole length and
	// exclusively by Close, so Close never pulls Pebble or a pack from under
	// a running call.
	mu      sync.RWMutex
	closed  bool
	closing chan struct{} // closed when Close starts: ends key listings
	closeIt sync.Once     // closes closing

	// Sync coalescing: writes counts unsynced writes once they complete;
	// a Sync that finds every write up to its start already covered by an
	// earlier sync returns without touching the disk.
	writes atomic.Uint64
	syncMu sync.Mutex
	synced uint64        // writes covered by the last completed sync; under syncMu
	syncs  atomic.Uint64 // syncs that reached the disk (tests)
	// the datastore's writes (DHT records), synced apart from blocks
	dsWrites atomic.Uint64
	dsSynced uint64 // under syncMu

	quota quota
	gate  *readGate // reads from index lookup to pack read, for GC's punches

	// leaseMu orders lease changes with GC's check that a block is left
	// without a lease.
	leaseMu sync.Mutex
	// putLocks serialise the puts of one block (by two bytes of its hash)
	// from plan to commit: two puts of one absent block at once both
	// charged the quota for it and wrote it twice. 4096: two stripes'
	// batches of five shards share a lock 0.6% of the time.
	putLocks [4096]sync.Mutex
}

// Index value encodings (first byte). Values are part of the on-disk format;
// retired tags are never reused.
const (
	tagInline = 0x00 // tag ‖ block bytes
	tagPacked = 0x01 // tag ‖ pack u32 ‖ offset u64 ‖ length u32 ‖ crc32c u32
	// packThreshold is the block size from which values go to pack files.
	packThreshold = 64 << 10 // bytes
	packedLen     = 1 + 4 + 8 + 4 + 4
)

var _ boxobs.Blockstore = (*Store)(nil)

// Option configures Open.
type Option func(*config)

type config struct {
	quota int64
	log   *slog.Logger
}

// WithQuota caps what the store holds at maxBytes, counted as Charge per
// block (its bytes and BlockOverhead): every write path — a peer's STORE,
// this node's own puts and manifest replicas, repair writes, bitswap's
// fetches — goes through it, and a write that would pass the cap fails with
// ErrFull. Default 0: no cap.
func WithQuota(maxBytes int64) Option { return func(c *config) { c.quota = maxBytes } }

// WithLogger sets where Pebble's errors go (its informational lines are
// dropped). Default: discard.
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.log = l } }

// memTableSize is Pebble's memtable size; two may be live at once.
const memTableSize = 32 << 20 // bytes

// Open opens (creating if needed) the store in dir. With a quota, what the
// store holds is counted first (a scan of the index's keys).
func Open(dir string, opts ...Option) (*Store, error) {
	cfg := config{log: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(&cfg)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("blockstore: %w", err)
	}
	index := filepath.Join(dir, "index")
	if err := makePrivate(dir, index); err != nil {
		return nil, err
	}
	po := &pebble.Options{
		FS:                          privateFS{vfs.Default},
		FormatMajorVersion:          pebble.FormatNewest,
		MemTableSize:                memTableSize,
		MemTableStopWritesThreshold: 2,
		Logger:                      pebbleLogger{cfg.log},
	}
	po.ApplyCompressionSettings(func() pebble.DBCompressionSettings { return pebble.DBCompressionNone })
	po.Experimental.ValueSeparationPolicy = func() pebble.ValueSeparationPolicy {
		return pebble.ValueSeparationPolicy{
			Enabled:               true,
			MinimumSize:           1 << 10,
			MaxBlobReferenceDepth: 10,
			RewriteMinimumAge:     10 * time.Minute,
			TargetGarbageRatio:    0.2,
		}
	}
	db, err := pebble.Open(index, po)
	if err != nil {
		return nil, fmt.Errorf("blockstore: open %s: %w", dir, err)
	}
	pk, err := openPacks(filepath.Join(dir, "packs"))
	if err != nil {
		db.Close()
		return nil, err
	}
	s := &Store{db: db, packs: pk, closing: make(chan struct{}), gate: newReadGate()}
	s.quota.max = cfg.quota
	if cfg.quota > 0 {
		if err := s.countBase(context.Background()); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// pebbleLogger sends Pebble's errors to the store's logger and drops its
// informational lines (flushes, compactions).
type pebbleLogger struct{ log *slog.Logger }

func (pebbleLogger) Infof(string, ...any) {}
func (l pebbleLogger) Errorf(format string, args ...any) {
	l.log.Error("pebble: " + fmt.Sprintf(format, args...))
}
func (l pebbleLogger) Fatalf(format string, args ...any) {
	msg := "pebble: " + fmt.Sprintf(format, args...)
	l.log.Error(msg)
	panic(msg) // Pebble does not expect Fatalf to return
}

// Close flushes nothing it has not already acknowledged and closes Pebble.
func (s *Store) Close() error {
	s.closeIt.Do(func() { close(s.closing) })
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	perr := s.packs.close()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("blockstore: close: %w", err)
	}
	if perr != nil {
		return fmt.Errorf("blockstore: close packs: %w", perr)
	}
	return nil
}

func key(h mh.Multihash) []byte {
	k := make([]byte, 1+len(h))
	k[0] = blockPrefix
	copy(k[1:], h)
	return k
}

// acquire takes the shared lock for one operation; release with
// s.mu.RUnlock when it returns nil.
func (s *Store) acquire() error {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return ErrClosed
	}
	return nil
}
