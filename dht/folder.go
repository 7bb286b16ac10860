package dht

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	ds "github.com/ipfs/go-datastore"
	dsq "github.com/ipfs/go-datastore/query"
	record "github.com/libp2p/go-libp2p-record"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/umbra-store/umbra/internal/format"
	"github.com/umbra-store/umbra/internal/kind"
)

// FolderNamespace is the DHT namespace of folder records: the key of a
// folder's record is "/udir/" followed by the folder's 32-byte id.
const FolderNamespace = "udir"

// FolderKey is the DHT key of the folder with this id.
func FolderKey(id [32]byte) string { return "/" + FolderNamespace + "/" + string(id[:]) }

// Folder record errors.
var (
	ErrRecordExpired = kind.New(kind.Corrupt, "dht: folder record expired")
	ErrRecordKey     = kind.New(kind.Corrupt, "dht: folder record stored under another folder's key")
	ErrRecordTooLong = kind.New(kind.Corrupt, "dht: folder record valid for more than two years")
	// ErrStale: a holder keeps a better record than the one offered.
	ErrStale = kind.New(kind.Conflict, "dht: a newer folder record is kept")
)

// FolderValidator accepts only folder records that decode, whose signature
// verifies, whose key is their folder's and that have not expired; of
// several it selects the best (Better).
type FolderValidator struct {
	// Now is the clock; nil: time.Now.
	Now func() time.Time
}

var _ record.Validator = FolderValidator{}

func (v FolderValidator) now() time.Time {
	if v.Now != nil {
		return v.Now()
	}
	return time.Now()
}

// Check decodes value and checks it as a record for key.
func (v FolderValidator) Check(key string, value []byte) (*format.Record, error) {
	r, err := format.DecodeRecord(value)
	if err != nil {
		return nil, err
	}
	if key != FolderKey(r.ID()) {
		return nil, ErrRecordKey
	}
	if r.Expired(v.now()) {
		return nil, ErrRecordExpired
	}
	if r.Expiry().After(v.now().Add(MaxRecordValidity)) {
		return nil, ErrRecordTooLong
	}
	return r, nil
}

// MaxRecordValidity bounds how far ahead a folder record's expiry may be:
// a record that never expires would be kept for ever.
const MaxRecordValidity = 2 * 365 * 24 * time.Hour

// Validate implements record.Validator.
func (v FolderValidator) Validate(key string, value []byte) error {
	_, err := v.Check(key, value)
	return err
}

// Select implements record.Validator: the index of the best valid value.
func (v FolderValidator) Select(key string, values [][]byte) (int, error) {
	best, bi := (*format.Record)(nil), -1
	for i, val := range values {
		r, err := v.Check(key, val)
		if err != nil {
			continue
		}
		if best == nil || Better(r, best) {
			best, bi = r, i
		}
	}
	if bi < 0 {
		return 0, errors.New("dht: no valid folder record")
	}
	return bi, nil
}

// Better reports whether folder record a is to be kept over b
// (format.Record.Supersedes).
func Better(a, b *format.Record) bool { return a.Supersedes(b) }

// Keeper keeps the latest valid record of each folder it is offered, in
// the DHT's (counted and capped) datastore, so that folders resolve from
// their holders when their DHT records are gone.
type Keeper struct {
	store ds.Batching
	v     FolderValidator
	max   int // folders kept at most

	mu      sync.Mutex
	counted bool
	n       int            // folders kept
	perPeer map[string]int // folders each peer brought since start
}

// Keeper limits: any peer can make folders of its own, for nothing.
const (
	// DefaultMaxFolders bounds the folders a keeper keeps records of
	// (some 400 bytes each on disk, within the DHT's record limit): past
	// it a record of a new folder is refused, records of folders kept
	// still renew.
	DefaultMaxFolders = 100_000
	// maxFoldersPerPeer bounds the new folders one peer can make a node
	// keep, from one start of the node to the next.
	maxFoldersPerPeer = 10_000
	// maxPeersCounted bounds the peers counted; past it, a peer not yet
	// counted brings no new folder.
	maxPeersCounted = 16_384
)

// ErrTooManyFolders: the keeper or the peer's share of it is full.
var ErrTooManyFolders = kind.New(kind.Full, "dht: no room for another folder's record")

const keptPrefix = "/umbra-folder/"

// NewKeeper returns a keeper over store (a node without its daemon keeps
// its own folders' records in it; the DHT's keeper shares its capped
// datastore).
func NewKeeper(store ds.Batching) *Keeper {
	return &Keeper{store: store, max: DefaultMaxFolders, perPeer: map[string]int{}}
}

func keptKey(id [32]byte) ds.Key { return ds.NewKey(keptPrefix + hex.EncodeToString(id[:])) }

// Offer keeps raw if it is valid and newer than what is kept. It returns
// ErrStale, with the kept record, when the kept one has a higher sequence
// number or the same one with other bytes (a writer that raced and lost).
func (k *Keeper) Offer(ctx context.Context, raw []byte) (kept []byte, err error) {
	return k.OfferFrom(ctx, "", raw)
}

// OfferFrom is Offer for a record peer from sent ("": this node), which
// counts in that peer's share if the folder is new here.
func (k *Keeper) OfferFrom(ctx context.Context, from string, raw []byte) (kept []byte, err error) {
	r, err := k.v.Check(FolderKey(keyOf(raw)), raw)
	if err != nil {
		return nil, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.count(ctx); err != nil {
		return nil, err
	}
	cur, err := k.getLocked(ctx, r.ID())
	if err != nil {
		return nil, err
	}
	if cur == nil {
		if err := k.admit(from); err != nil {
			return nil, err
		}
	}
	if cur != nil {
		if cur.Equal(r) {
			return cur.Bytes(), nil
		}
		if cur.Seq() >= r.Seq() {
			return cur.Bytes(), ErrStale
		}
	}
	if err := k.store.Put(ctx, keptKey(r.ID()), r.Bytes()); err != nil {
		return nil, err
	}
	if cur == nil {
		k.n++
		if from != "" {
			k.perPeer[from]++
		}
	}
	return r.Bytes(), nil
}

// keyOf is the id a record claims (checked against its key by Check).
func keyOf(raw []byte) [32]byte {
	r, err := format.DecodeRecord(raw)
	if err != nil {
		return [32]byte{}
	}
	return r.ID()
}

// admit checks there is room for one more folder, from peer from.
func (k *Keeper) admit(from string) error {
	if k.n >= k.max {
		return fmt.Errorf("%w (%d folders kept)", ErrTooManyFolders, k.n)
	}
	if from == "" {
		return nil
	}
	n, counted := k.perPeer[from]
	if n >= maxFoldersPerPeer || (!counted && len(k.perPeer) >= maxPeersCounted) {
		return fmt.Errorf("%w: this peer's share is used", ErrTooManyFolders)
	}
	return nil
}

// count counts the folders kept, once.
func (k *Keeper) count(ctx context.Context) error {
	if k.counted {
		return nil
	}
	res, err := k.store.Query(ctx, dsq.Query{Prefix: keptPrefix, KeysOnly: true})
	if err != nil {
		return err
	}
	defer res.Close()
	for e := range res.Next() {
		if e.Error != nil {
			return e.Error
		}
		k.n++
	}
	k.counted = true
	return nil
}

// Get returns the kept record of folder id, nil if none (or expired).
func (k *Keeper) Get(ctx context.Context, id [32]byte) (*format.Record, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.getLocked(ctx, id)
}

func (k *Keeper) getLocked(ctx context.Context, id [32]byte) (*format.Record, error) {
	raw, err := k.store.Get(ctx, keptKey(id))
	if errors.Is(err, ds.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	r, err := k.v.Check(FolderKey(id), raw)
	if err != nil {
		// Expired, or damaged on disk: forget it.
		if k.store.Delete(ctx, keptKey(id)) == nil && k.counted {
			k.n--
		}
		return nil, nil
	}
	return r, nil
}

// All returns every valid kept record.
func (k *Keeper) All(ctx context.Context) ([]*format.Record, error) {
	res, err := k.store.Query(ctx, dsq.Query{Prefix: keptPrefix})
	if err != nil {
		return nil, err
	}
	defer res.Close()
	var out []*format.Record
	for e := range res.Next() {
		if e.Error != nil {
			return nil, e.Error
		}
		r, err := format.DecodeRecord(e.Value)
		if err != nil || r.Expired(k.v.now()) {
			continue
		}
		out = append(out, r)
	}
	return out, nil
}

// KeepFolder keeps a folder record here if it is valid and newer than the
// one kept (Keeper.Offer). It returns the record kept afterwards and
// whether it is raw; an invalid record is an error of kind Corrupt.
func (d *DHT) KeepFolder(ctx context.Context, raw []byte) (kept []byte, accepted bool, err error) {
	return d.KeepFolderFrom(ctx, "", raw)
}

// KeepFolderFrom is KeepFolder for a record peer from sent: a new folder
// counts in that peer's share.
func (d *DHT) KeepFolderFrom(ctx context.Context, from peer.ID, raw []byte) (kept []byte, accepted bool, err error) {
	kept, err = d.keeper.OfferFrom(ctx, string(from), raw)
	if errors.Is(err, ErrStale) {
		return kept, false, nil
	}
	return kept, err == nil, err
}

// KeptFolder returns the record of folder id kept here, nil if none.
func (d *DHT) KeptFolder(ctx context.Context, id [32]byte) ([]byte, error) {
	r, err := d.keeper.Get(ctx, id)
	if r == nil || err != nil {
		return nil, err
	}
	return r.Bytes(), nil
}

// PutFolder stores a folder record on the DHT's closest peers.
func (d *DHT) PutFolder(ctx context.Context, raw []byte) error {
	r, err := format.DecodeRecord(raw)
	if err != nil {
		return err
	}
	return d.kad.PutValue(ctx, FolderKey(r.ID()), raw)
}

// GetFolder returns the best record of folder id the DHT finds.
func (d *DHT) GetFolder(ctx context.Context, id [32]byte) ([]byte, error) {
	return d.kad.GetValue(ctx, FolderKey(id))
}

// Keeper returns the DHT's keeper of folder records.
func (d *DHT) Keeper() *Keeper { return d.keeper }

// RepublishFolders puts every kept folder record on the DHT again, first
// after first and then every interval, until ctx ends: kad-dht peers drop
// records older than their record age (WithRecordAge).
func (d *DHT) RepublishFolders(ctx context.Context, first, interval time.Duration) {
	t := time.NewTimer(first)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		recs, err := d.keeper.All(ctx)
		if err != nil && ctx.Err() == nil {
			d.log.Warn("folder records: list", "err", err)
		}
		for _, r := range recs {
			pctx, cancel := context.WithTimeout(ctx, provideLimit)
			if err := d.kad.PutValue(pctx, FolderKey(r.ID()), r.Bytes()); err != nil && ctx.Err() == nil {
				d.log.Debug("folder record: republish", "err", err)
			}
			cancel()
		}
		t.Reset(interval)
	}
}
