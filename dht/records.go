package dht

import (
	"context"
	"fmt"
	"sync"

	ds "github.com/ipfs/go-datastore"
	dsq "github.com/ipfs/go-datastore/query"

	"github.com/umbra-store/umbra/internal/kind"
)

// DefaultRecordLimit bounds what the DHT keeps in the node's datastore:
// provider records (about 130 bytes each, kept 48 h) and value records.
// Any connected peer can send ADD_PROVIDER for keys of its choosing; this is
// how much disk it can make the node spend on them, outside
// Storage.MaxBytes. About a million provider records: a network of some
// 300 GB of shards at 360 KiB each.
const DefaultRecordLimit = 128 << 20 // bytes

// ErrRecordsFull is returned when storing a DHT record would take the
// records past their limit.
var ErrRecordsFull = kind.New(kind.Full, "dht: record space full")

// limitedStore is the datastore kad-dht writes its records to, with what
// they take (key and value bytes) counted and capped.
type limitedStore struct {
	ds.Batching
	max int64

	mu   sync.Mutex
	used int64
}

// limitRecords wraps store, counting what it holds now: its DiskUsage if
// it has one (the node's store reads it without holding it in memory), a
// scan of its keys and values otherwise.
func limitRecords(ctx context.Context, store ds.Batching, max int64) (*limitedStore, error) {
	l := &limitedStore{Batching: store, max: max}
	if p, ok := store.(ds.PersistentDatastore); ok {
		n, err := p.DiskUsage(ctx)
		if err != nil {
			return nil, fmt.Errorf("dht: count records: %w", err)
		}
		l.used = int64(n)
		return l, nil
	}
	res, err := store.Query(ctx, dsq.Query{})
	if err != nil {
		return nil, fmt.Errorf("dht: count records: %w", err)
	}
	defer res.Close()
	for r := range res.Next() {
		if r.Error != nil {
			return nil, fmt.Errorf("dht: count records: %w", r.Error)
		}
		l.used += int64(len(r.Key) + len(r.Value))
	}
	return l, nil
}

func (l *limitedStore) size(ctx context.Context, k ds.Key) int64 {
	n, err := l.Batching.GetSize(ctx, k)
	if err != nil {
		return -1
	}
	return int64(len(k.String()) + n)
}

// Put refuses a record that would take the records past the limit.
func (l *limitedStore) Put(ctx context.Context, k ds.Key, v []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	old := max(l.size(ctx, k), 0)
	grow := int64(len(k.String())+len(v)) - old
	if grow > 0 && l.used+grow > l.max {
		return fmt.Errorf("%w (%d bytes)", ErrRecordsFull, l.max)
	}
	if err := l.Batching.Put(ctx, k, v); err != nil {
		return err
	}
	l.used += grow
	return nil
}

func (l *limitedStore) Delete(ctx context.Context, k ds.Key) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	old := l.size(ctx, k)
	if err := l.Batching.Delete(ctx, k); err != nil {
		return err
	}
	if old > 0 {
		l.used -= old
	}
	return nil
}

// Batch goes through Put and Delete, so that batches are counted too.
func (l *limitedStore) Batch(ctx context.Context) (ds.Batch, error) { return ds.NewBasicBatch(l), nil }

var _ ds.Batching = (*limitedStore)(nil)
