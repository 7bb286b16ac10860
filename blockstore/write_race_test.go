package blockstore

import (
	"bytes"
	"context"
	"sync"
	"testing"

	blocks "github.com/ipfs/go-block-format"
)

// TestConcurrentPutsChargeOnce: two puts of one new block at once (two
// uploaders of the same data, a STORE retried on a new stream) charge the
// quota once: what the store says it uses stays what its index holds.
func TestConcurrentPutsChargeOnce(t *testing.T) {
	ctx := context.Background()
	s := openT(t, t.TempDir())
	for i := range 200 {
		b := rawBlock(bytes.Repeat([]byte{byte(i), byte(i >> 8), 1}, 40<<10))
		var start, wg sync.WaitGroup
		start.Add(1)
		for range 2 {
			wg.Go(func() {
				start.Wait()
				if err := s.PutManyDeferred(ctx, []blocks.Block{b}); err != nil {
					t.Error(err)
				}
			})
		}
		start.Done()
		wg.Wait()
	}
	st, err := s.Stats(ctx)
	used, uerr := s.Used(ctx)
	if err != nil || uerr != nil || st.Blocks != 200 || used != st.Charged() {
		t.Fatalf("200 blocks put twice at once: %+v (%v), quota says %d (%v), want %d", st, err, used, uerr, st.Charged())
	}
}
