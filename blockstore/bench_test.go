package blockstore

import (
	"context"
	"crypto/sha256"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

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
	s := openT(b, b.TempDir())
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

// BenchmarkCollect1GiB: GC and compaction of 1 GiB of expired shards
// (384 KiB each, a 3+2 stripe's), next to 256 MiB that stay.
func BenchmarkCollect1GiB(b *testing.B) {
	ctx := context.Background()
	for range b.N {
		b.StopTimer()
		dir := b.TempDir()
		s, err := Open(dir)
		if err != nil {
			b.Fatal(err)
		}
		soon := uint64(time.Now().Add(time.Minute).Unix())
		src := rand.NewChaCha8([32]byte{9})
		var live []cid.Cid
		const shard = 384 << 10
		for i := range (1<<30 + 256<<20) / shard {
			d := make([]byte, shard)
			src.Read(d)
			blk := rawBlock(d)
			if err := s.PutManyDeferred(ctx, []blocks.Block{blk}); err != nil {
				b.Fatal(err)
			}
			if i%5 == 4 {
				live = append(live, blk.Cid())
			} else { // four in five expire
				if err := s.AddLease(ctx, blk.Cid(), Lease{Expiry: soon, Hash: sha256.Sum256(d[:16])}, ByStore); err != nil {
					b.Fatal(err)
				}
			}
		}
		if err := s.Sync(ctx); err != nil {
			b.Fatal(err)
		}
		// Reads of the blocks that stay, alone for as long as the
		// collection takes, then during it: the ratio is the stall.
		read := func(stop <-chan struct{}) (n int64) {
			for {
				for _, c := range live {
					select {
					case <-stop:
						return n
					default:
					}
					blk, err := s.Get(ctx, c)
					if err != nil {
						b.Error(err)
						return n
					}
					n += int64(len(blk.RawData()))
				}
			}
		}
		before := diskBytes(b, dir)
		stop, got := make(chan struct{}), make(chan int64)
		go func() { got <- read(stop) }()
		b.StartTimer()
		t0 := time.Now()
		st, err := s.Collect(ctx, time.Now().Add(time.Hour), 0, DefaultMinLive)
		took := time.Since(t0)
		b.StopTimer()
		close(stop)
		during := float64(<-got) / took.Seconds()
		stop = make(chan struct{})
		go func() { got <- read(stop) }()
		time.Sleep(took) // the baseline runs as long as the collection did
		close(stop)
		alone := float64(<-got) / took.Seconds()
		b.ReportMetric(during/alone, "reads-during/alone")
		if err != nil || st.Bytes < 1<<30-shard {
			b.Fatalf("%+v %v", st, err)
		}
		// The expired bytes left the disk (punched, or their packs rewritten).
		if freed := before - diskBytes(b, dir); freed < 1<<30*9/10 {
			b.Fatalf("%d bytes of disk freed", freed)
		}
		b.SetBytes(st.Bytes)
		s.Close()
	}
}
