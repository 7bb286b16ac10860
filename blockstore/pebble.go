package blockstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	boxobs "github.com/ipfs/boxo/blockstore"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	mh "github.com/multiformats/go-multihash"
)

// Errors. A missing block is reported as ipld.ErrNotFound, as boxo expects.
var (
	// ErrHashMismatch is returned by Put, PutMany and PutManyDeferred for a
	// block whose bytes do not hash to its CID, and by Get with
	// WithVerifyOnRead for a stored block that does not.
	ErrHashMismatch = errors.New("blockstore: block does not match its CID")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("blockstore: closed")
	// ErrCIDForm is returned by Put, PutMany, PutManyDeferred and CheckCID
	// for a CID of another form than the one umbra writes: CIDv1, raw codec,
	// full 32-byte SHA-256 digest. Get, GetSize and Has answer such a CID
	// as not found.
	ErrCIDForm = errors.New("blockstore: unsupported CID (umbra stores CIDv1, raw, sha2-256 blocks only)")
)

// BlockOverhead is what a block costs the store beyond its bytes: its index
// key (35 bytes) and value (21 bytes when packed), Pebble's per-entry
// overhead and a pack record header (39 bytes), rounded up. Quotas charge it
// per block (Charge), so that many tiny blocks cannot hold more disk than
// the quota says.
const BlockOverhead = 128 // bytes

// Charge is what storing a block of size bytes counts against a quota.
func Charge(size int) int64 { return int64(size) + BlockOverhead }

// CheckCID accepts only the CID form umbra writes (ErrCIDForm otherwise):
// version 1, raw codec, a sha2-256 multihash with a full 32-byte digest. A
// truncated digest, another hash function or another codec would let one
// block be stored under many names, or many blocks under one.
func CheckCID(c cid.Cid) error {
	if !c.Defined() || c.Version() != 1 || c.Type() != cid.Raw {
		return ErrCIDForm
	}
	h := c.Hash()
	if len(h) != 34 || h[0] != mh.SHA2_256 || h[1] != 32 {
		return ErrCIDForm
	}
	return nil
}

const blockPrefix = 'b'

// Store is a Pebble-backed block store.
type Store struct {
	db           *pebble.DB
	packs        *packs
	verifyOnRead bool

	// mu is held shared by every operation for its whole length and
	// exclusively by Close, so Close never pulls Pebble or a pack from under
	// a running call.
	mu      sync.RWMutex
	closed  bool
	closing chan struct{} // closed when Close starts: ends key listings

	// Sync coalescing: writes counts unsynced writes once they complete;
	// a Sync that finds every write up to its start already covered by an
	// earlier sync returns without touching the disk.
	writes atomic.Uint64
	syncMu sync.Mutex
	synced uint64        // writes covered by the last completed sync; under syncMu
	syncs  atomic.Uint64 // syncs that reached the disk (tests)
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
	verifyOnRead bool
	memtable     uint64
}

// WithVerifyOnRead makes Get hash every block it returns and fail with
// ErrHashMismatch on a mismatch. Default: off (Pebble checksums its files;
// readers that decrypt authenticate anyway).
func WithVerifyOnRead(on bool) Option { return func(c *config) { c.verifyOnRead = on } }

// WithMemTableSize sets Pebble's memtable size in bytes. Default 32 MiB; two
// memtables may be live at once.
func WithMemTableSize(n uint64) Option { return func(c *config) { c.memtable = n } }

// Open opens (creating if needed) the store in dir.
func Open(dir string, opts ...Option) (*Store, error) {
	cfg := config{memtable: 32 << 20}
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
		MemTableSize:                cfg.memtable,
		MemTableStopWritesThreshold: 2,
		Logger:                      quietLogger{},
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
	return &Store{db: db, packs: pk, verifyOnRead: cfg.verifyOnRead, closing: make(chan struct{})}, nil
}

// Close flushes nothing it has not already acknowledged and closes Pebble.
func (s *Store) Close() error {
	select {
	case <-s.closing:
	default:
		close(s.closing)
	}
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

// Verify checks that c has umbra's form (CheckCID) and that data hashes to
// it.
func Verify(c cid.Cid, data []byte) error {
	if err := CheckCID(c); err != nil {
		return err
	}
	sum := sha256.Sum256(data)
	if !bytes.Equal(sum[:], c.Hash()[2:]) {
		return fmt.Errorf("%w: %s", ErrHashMismatch, Short(c))
	}
	return nil
}

// hashedBlock is a block whose CID NewBlock computed from its bytes, so the
// store need not hash it again.
type hashedBlock struct{ *blocks.BasicBlock }

// NewBlock makes a CIDv1 raw SHA-256 block by hashing data. Stores skip the
// write-time hash check for blocks made here.
func NewBlock(data []byte) (blocks.Block, [32]byte) {
	d := sha256.Sum256(data)
	b, _ := blocks.NewBlockWithCid(data, CIDOf(d))
	return hashedBlock{b}, d
}

// CIDOf returns the CID umbra gives a block whose SHA-256 is digest:
// CIDv1, raw, sha2-256.
func CIDOf(digest [32]byte) cid.Cid {
	buf := make([]byte, 34)
	buf[0], buf[1] = mh.SHA2_256, 32
	copy(buf[2:], digest[:])
	return cid.NewCidV1(cid.Raw, mh.Multihash(buf))
}

// Short returns the last 8 characters of a CID, for logs and errors.
func Short(c cid.Cid) string {
	s := c.String()
	if len(s) > 8 {
		return "…" + s[len(s)-8:]
	}
	return s
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

// Put stores one block durably.
func (s *Store) Put(ctx context.Context, b blocks.Block) error {
	return s.putMany(ctx, []blocks.Block{b}, pebble.Sync)
}

// PutMany stores blocks atomically and durably.
func (s *Store) PutMany(ctx context.Context, bs []blocks.Block) error {
	return s.putMany(ctx, bs, pebble.Sync)
}

// PutManyDeferred stores blocks atomically; they are durable after the next
// Sync (or a later Put/PutMany), and a crash before that may lose them whole.
func (s *Store) PutManyDeferred(ctx context.Context, bs []blocks.Block) error {
	return s.putMany(ctx, bs, pebble.NoSync)
}

// Sync makes every write before it durable. Concurrent calls share one
// disk sync, and a call with nothing new to sync returns at once: a flood of
// syncs costs one fsync per batch of writes, not one each.
func (s *Store) Sync(ctx context.Context) error {
	if err := s.acquire(); err != nil {
		return err
	}
	defer s.mu.RUnlock()
	want := s.writes.Load()
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	if s.synced >= want {
		return nil // an earlier sync covered every write before this call
	}
	// INVARIANT: writes is bumped after a write completes, so every write
	// counted in now is in the pack files and Pebble's WAL already.
	now := s.writes.Load()
	// Pack data first, then the index that points at it.
	if err := s.packs.sync(); err != nil {
		return err
	}
	if err := s.db.LogData(nil, pebble.Sync); err != nil {
		return fmt.Errorf("blockstore: sync: %w", err)
	}
	s.synced = now
	s.syncs.Add(1)
	return nil
}

// wrote counts a completed write that is not durable yet.
func (s *Store) wrote() { s.writes.Add(1) }

func (s *Store) putMany(ctx context.Context, bs []blocks.Block, wo *pebble.WriteOptions) error {
	if err := s.acquire(); err != nil {
		return err
	}
	defer s.mu.RUnlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, b := range bs {
		if err := CheckCID(b.Cid()); err != nil {
			return fmt.Errorf("%w: %s", err, b.Cid())
		}
		if _, ok := b.(hashedBlock); ok {
			continue // its CID was computed from these bytes
		}
		if err := Verify(b.Cid(), b.RawData()); err != nil {
			return err
		}
	}
	vals := make([][]byte, len(bs))
	size := 0
	for i, b := range bs {
		data := b.RawData()
		// INVARIANT: a held block whose stored copy is intact is never
		// written again (convergent puts of the same data write nothing).
		// The stored copy is read back and checked first: an index entry can
		// reach disk before its pack bytes (a crash between a deferred put
		// and its Sync), and such an entry is rewritten with these verified
		// bytes, never trusted. Repair deletes before it puts.
		if v, closer, err := s.db.Get(key(b.Cid().Hash())); err == nil {
			old := bytes.Clone(v)
			closer.Close()
			if stored, err := s.value(b.Cid(), old, nil); err == nil && Verify(b.Cid(), stored) == nil {
				continue
			}
		}
		if len(data) < packThreshold {
			vals[i] = append([]byte{tagInline}, data...)
		} else {
			loc, err := s.packs.append(b.Cid().Hash(), data)
			if err != nil {
				return err
			}
			vals[i] = encodeLocation(loc)
		}
		size += len(vals[i]) + len(b.Cid().Hash()) + 16
	}
	if size == 0 {
		return nil // every block was held already
	}
	if wo.Sync {
		if err := s.packs.sync(); err != nil {
			return err
		}
	}
	batch := s.db.NewBatchWithSize(size)
	defer batch.Close()
	for i, b := range bs {
		if vals[i] == nil {
			continue
		}
		if err := batch.Set(key(b.Cid().Hash()), vals[i], nil); err != nil {
			return fmt.Errorf("blockstore: %w", err)
		}
	}
	if err := batch.Commit(wo); err != nil {
		return fmt.Errorf("blockstore: write: %w", err)
	}
	if !wo.Sync {
		s.wrote()
	}
	return nil
}

func encodeLocation(l location) []byte {
	v := make([]byte, 0, packedLen)
	v = append(v, tagPacked)
	v = binary.BigEndian.AppendUint32(v, l.pack)
	v = binary.BigEndian.AppendUint64(v, uint64(l.offset))
	v = binary.BigEndian.AppendUint32(v, l.length)
	return binary.BigEndian.AppendUint32(v, l.crc)
}

// value resolves an index value to the block bytes (a fresh slice).
func (s *Store) value(c cid.Cid, v []byte, get func(n int) []byte) ([]byte, error) {
	if len(v) == 0 {
		return nil, fmt.Errorf("%w: %s: empty index entry", ErrHashMismatch, Short(c))
	}
	switch v[0] {
	case tagInline:
		if get != nil {
			b := get(len(v) - 1)
			copy(b, v[1:])
			return b, nil
		}
		return bytes.Clone(v[1:]), nil
	case tagPacked:
		if len(v) != packedLen {
			return nil, fmt.Errorf("%w: %s: bad index entry", ErrHashMismatch, Short(c))
		}
		loc := location{
			pack:   binary.BigEndian.Uint32(v[1:]),
			offset: int64(binary.BigEndian.Uint64(v[5:])),
			length: binary.BigEndian.Uint32(v[13:]),
			crc:    binary.BigEndian.Uint32(v[17:]),
		}
		data, err := s.packs.read(loc, get)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrHashMismatch, Short(c), err)
		}
		return data, nil
	}
	return nil, fmt.Errorf("%w: %s: unknown index tag 0x%02x", ErrHashMismatch, Short(c), v[0])
}

// size returns a block's size from its index value.
func valueSize(v []byte) int {
	if len(v) == packedLen && v[0] == tagPacked {
		return int(binary.BigEndian.Uint32(v[13:]))
	}
	return max(len(v)-1, 0)
}

// Get returns a block, or an error satisfying ipld.IsNotFound.
func (s *Store) Get(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	data, err := s.GetInto(ctx, c, nil)
	if err != nil {
		return nil, err
	}
	return blocks.NewBlockWithCid(data, c)
}

// GetInto returns a block's bytes like Get, read into a buffer from get
// (called with the block's size, returning at least that many bytes) for a
// caller that recycles buffers. A nil get allocates.
func (s *Store) GetInto(ctx context.Context, c cid.Cid, get func(n int) []byte) ([]byte, error) {
	if CheckCID(c) != nil {
		return nil, ipld.ErrNotFound{Cid: c}
	}
	if err := s.acquire(); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	v, closer, err := s.db.Get(key(c.Hash()))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, ipld.ErrNotFound{Cid: c}
	}
	if err != nil {
		return nil, fmt.Errorf("blockstore: read %s: %w", Short(c), err)
	}
	data, err := s.value(c, v, get)
	closer.Close()
	if err != nil {
		return nil, err
	}
	if s.verifyOnRead {
		if err := Verify(c, data); err != nil {
			return nil, err
		}
	}
	return data, nil
}

// GetSize returns the size of a block.
func (s *Store) GetSize(ctx context.Context, c cid.Cid) (int, error) {
	if CheckCID(c) != nil {
		return -1, ipld.ErrNotFound{Cid: c}
	}
	if err := s.acquire(); err != nil {
		return -1, err
	}
	defer s.mu.RUnlock()
	v, closer, err := s.db.Get(key(c.Hash()))
	if errors.Is(err, pebble.ErrNotFound) {
		return -1, ipld.ErrNotFound{Cid: c}
	}
	if err != nil {
		return -1, fmt.Errorf("blockstore: read %s: %w", Short(c), err)
	}
	n := valueSize(v)
	closer.Close()
	return n, nil
}

// Has reports whether a block is stored, reading only its key.
func (s *Store) Has(ctx context.Context, c cid.Cid) (bool, error) {
	if CheckCID(c) != nil {
		return false, nil
	}
	if err := s.acquire(); err != nil {
		return false, err
	}
	defer s.mu.RUnlock()
	k := key(c.Hash())
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: k, UpperBound: append(bytes.Clone(k), 0)})
	if err != nil {
		return false, fmt.Errorf("blockstore: %w", err)
	}
	ok := it.First()
	if err := it.Close(); err != nil {
		return false, fmt.Errorf("blockstore: %w", err)
	}
	return ok, nil
}

// DeleteBlock removes a block durably. Deleting a missing block is not an
// error.
func (s *Store) DeleteBlock(ctx context.Context, c cid.Cid) error {
	if err := s.acquire(); err != nil {
		return err
	}
	defer s.mu.RUnlock()
	// A synced commit makes every earlier index entry durable: their pack
	// bytes must be durable first.
	if err := s.packs.sync(); err != nil {
		return err
	}
	if err := s.db.Delete(key(c.Hash()), pebble.Sync); err != nil {
		return fmt.Errorf("blockstore: delete %s: %w", Short(c), err)
	}
	return nil
}

// AllKeysChan lists every stored block as a CIDv1 with the raw codec.
func (s *Store) AllKeysChan(ctx context.Context) (<-chan cid.Cid, error) {
	if err := s.acquire(); err != nil {
		return nil, err
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{blockPrefix}, UpperBound: []byte{blockPrefix + 1}})
	if err != nil {
		s.mu.RUnlock()
		return nil, fmt.Errorf("blockstore: %w", err)
	}
	ch := make(chan cid.Cid, 64)
	go func() {
		// The listing holds the shared lock until it ends; Close ends it.
		defer s.mu.RUnlock()
		defer close(ch)
		defer it.Close()
		for ok := it.First(); ok; ok = it.Next() {
			h, err := mh.Cast(bytes.Clone(it.Key()[1:]))
			if err != nil {
				continue
			}
			select {
			case ch <- cid.NewCidV1(cid.Raw, h):
			case <-ctx.Done():
				return
			case <-s.closing:
				return
			}
		}
	}()
	return ch, nil
}

// Stats summarises what the store holds.
type Stats struct {
	Blocks int
	Bytes  int64
}

// Charged is what the store's blocks count against a quota: their bytes
// plus BlockOverhead each.
func (st Stats) Charged() int64 { return st.Bytes + int64(st.Blocks)*BlockOverhead }

// Stats counts blocks and their bytes (a full key scan; the values are not
// read, sizes come from Pebble's lazy values).
func (s *Store) Stats(ctx context.Context) (Stats, error) {
	var st Stats
	if err := s.acquire(); err != nil {
		return st, err
	}
	defer s.mu.RUnlock()
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{blockPrefix}, UpperBound: []byte{blockPrefix + 1}})
	if err != nil {
		return st, fmt.Errorf("blockstore: %w", err)
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		st.Blocks++
		v, err := it.ValueAndErr()
		if err != nil {
			return st, fmt.Errorf("blockstore: %w", err)
		}
		st.Bytes += int64(valueSize(v))
		if st.Blocks%4096 == 0 && ctx.Err() != nil {
			return st, ctx.Err()
		}
	}
	return st, nil
}

// quietLogger drops Pebble's informational logs and keeps errors on stderr.
type quietLogger struct{}

func (quietLogger) Infof(string, ...interface{}) {}
func (quietLogger) Errorf(format string, args ...interface{}) {
	fmt.Fprintf(errWriter, "pebble: "+format+"\n", args...)
}
func (quietLogger) Fatalf(format string, args ...interface{}) {
	panic(fmt.Sprintf("pebble: "+format, args...))
}

var errWriter io.Writer = discard{}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
