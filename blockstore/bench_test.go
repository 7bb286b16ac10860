package blockstore

import (
	"context"
	"crypto/sha256"
	"sync"
	"testing"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"

	"github.com/umbra-store/umbra/internal/randstream"
)

func rawBlock(data []byte) blocks.Block {
	sum := sha256.Sum256(data)
	h, _ := mh.Encode(sum[:], mh.SHA2_256)
	b, _ := blocks.NewBlockWithCid(data, cid.NewCidV1(cid.Raw, h))
	return b
}

// BenchmarkPutManyDeferred5x384K writes batches of five 384 KiB shards (one
// 3+2 stripe of a 1 MiB chunk) from two goroutines and syncs once at the end:
// the engine's write path.
func BenchmarkPutManyDeferred5x384K(b *testing.B) {
	s, err := Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const size = 384 << 10
	r := randstream.New(1, 64*size)
	pool := make([][]byte, 64)
	for i := range pool {
		pool[i] = make([]byte, size)
		r.Read(pool[i])
	}
	b.SetBytes(5 * size)
	b.ReportAllocs()
	ctx := context.Background()
	var wg sync.WaitGroup
	var mu sync.Mutex
	next := 0
	b.ResetTimer()
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= b.N {
					return
				}
				bs := make([]blocks.Block, 5)
				for j := range bs {
					d := pool[(i*5+j)%len(pool)]
					d[0], d[1], d[2], d[3] = byte(i), byte(i>>8), byte(i>>16), byte(j)
					bs[j] = rawBlock(append([]byte(nil), d...))
				}
				if err := s.PutManyDeferred(ctx, bs); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := s.Sync(ctx); err != nil {
		b.Fatal(err)
	}
}
