package blockstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/cockroachdb/pebble/v2"
	ds "github.com/ipfs/go-datastore"
	dsq "github.com/ipfs/go-datastore/query"
)

// dsPrefix keeps datastore keys apart from blocks in the same Pebble DB.
const dsPrefix = 'd'

// Datastore returns a go-datastore view of the store's Pebble database under
// its own key prefix ("d" ‖ key). The DHT keeps its records and provider
// records there, so they survive restarts in the node's one database.
func (s *Store) Datastore() ds.Batching { return &datastore{s: s} }

type datastore struct{ s *Store }

var _ ds.Batching = (*datastore)(nil)

func dsKey(k ds.Key) []byte { return append([]byte{dsPrefix}, k.String()...) }

func (d *datastore) Get(ctx context.Context, k ds.Key) ([]byte, error) {
	if err := d.s.acquire(); err != nil {
		return nil, err
	}
	defer d.s.mu.RUnlock()
	v, closer, err := d.s.db.Get(dsKey(k))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, ds.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("blockstore: datastore get: %w", err)
	}
	defer closer.Close()
	return bytes.Clone(v), nil
}

func (d *datastore) Has(ctx context.Context, k ds.Key) (bool, error) {
	_, err := d.Get(ctx, k)
	if errors.Is(err, ds.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

func (d *datastore) GetSize(ctx context.Context, k ds.Key) (int, error) {
	v, err := d.Get(ctx, k)
	if err != nil {
		return -1, err
	}
	return len(v), nil
}

func (d *datastore) Put(ctx context.Context, k ds.Key, v []byte) error {
	if err := d.s.acquire(); err != nil {
		return err
	}
	defer d.s.mu.RUnlock()
	if err := d.s.db.Set(dsKey(k), v, pebble.NoSync); err != nil {
		return err
	}
	d.s.dsWrites.Add(1)
	return nil
}

func (d *datastore) Delete(ctx context.Context, k ds.Key) error {
	if err := d.s.acquire(); err != nil {
		return err
	}
	defer d.s.mu.RUnlock()
	if err := d.s.db.Delete(dsKey(k), pebble.NoSync); err != nil {
		return err
	}
	d.s.dsWrites.Add(1)
	return nil
}

// Sync makes the datastore's writes durable (Pebble's WAL), coalesced like
// Store.Sync but counted apart: records written by peers through the DHT
// must not turn every block SYNC into a disk sync.
func (d *datastore) Sync(ctx context.Context, _ ds.Key) error {
	if err := d.s.acquire(); err != nil {
		return err
	}
	defer d.s.mu.RUnlock()
	want := d.s.dsWrites.Load()
	d.s.syncMu.Lock()
	defer d.s.syncMu.Unlock()
	if d.s.dsSynced >= want {
		return nil
	}
	now := d.s.dsWrites.Load()
	if err := d.s.db.LogData(nil, pebble.Sync); err != nil {
		return fmt.Errorf("blockstore: datastore sync: %w", err)
	}
	d.s.dsSynced = now
	return nil
}

func (d *datastore) Close() error { return nil } // the Store owns the database

var _ ds.PersistentDatastore = (*datastore)(nil)

// DiskUsage returns the bytes of the datastore's keys and values (as the
// DHT counts its records), reading them without holding them in memory.
func (d *datastore) DiskUsage(ctx context.Context) (uint64, error) {
	if err := d.s.acquire(); err != nil {
		return 0, err
	}
	defer d.s.mu.RUnlock()
	it, err := d.s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{dsPrefix}, UpperBound: []byte{dsPrefix + 1}})
	if err != nil {
		return 0, fmt.Errorf("blockstore: datastore usage: %w", err)
	}
	defer it.Close()
	var n uint64
	entries := 0
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return 0, fmt.Errorf("blockstore: datastore usage: %w", err)
		}
		n += uint64(len(it.Key()) - 1 + len(v))
		if entries++; entries%4096 == 0 && ctx.Err() != nil {
			return 0, ctx.Err()
		}
	}
	return n, nil
}

func (d *datastore) Batch(ctx context.Context) (ds.Batch, error) { return ds.NewBasicBatch(d), nil }

// Query lists entries under q.Prefix and applies the rest of q naively.
func (d *datastore) Query(ctx context.Context, q dsq.Query) (dsq.Results, error) {
	if err := d.s.acquire(); err != nil {
		return nil, err
	}
	defer d.s.mu.RUnlock()
	prefix := q.Prefix
	if prefix != "" && !strings.HasPrefix(prefix, "/") {
		prefix = "/" + prefix
	}
	lo := append([]byte{dsPrefix}, prefix...)
	hi := append([]byte{dsPrefix}, prefix...)
	hi = append(hi, 0xff)
	it, err := d.s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, fmt.Errorf("blockstore: datastore query: %w", err)
	}
	defer it.Close()
	var ents []dsq.Entry
	for ok := it.First(); ok; ok = it.Next() {
		k := string(it.Key()[1:])
		if prefix != "" && prefix != "/" && k != prefix && !strings.HasPrefix(k, strings.TrimSuffix(prefix, "/")+"/") {
			continue
		}
		e := dsq.Entry{Key: k}
		if !q.KeysOnly {
			v, err := it.ValueAndErr()
			if err != nil {
				return nil, err
			}
			e.Value = bytes.Clone(v)
			e.Size = len(v)
		}
		ents = append(ents, e)
	}
	qq := q
	qq.Prefix = "" // done above
	return dsq.NaiveQueryApply(qq, dsq.ResultsWithEntries(qq, ents)), nil
}
