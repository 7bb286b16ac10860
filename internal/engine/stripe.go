package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/umbra-store/umbra/blockstore"
	"github.com/umbra-store/umbra/erasure"
	"github.com/umbra-store/umbra/internal/format"
	"github.com/umbra-store/umbra/internal/xfer"
)

// hedgeMin is the least a straggling shard is waited for before a parity
// shard is asked for in its place.
const hedgeMin = 100 * time.Millisecond

// shallowStripe fetches k shards of stripe si from where they should be and
// returns how many it got. It starts with the shards this node's store
// holds, parity included, then the data shards: a local parity shard costs
// a Reed-Solomon decode, far less than a peer's serving, sending and
// sealing one (with every holder up, a third of a get's remote shards).
// Every failure starts the next shard, and so does a shard still missing 3×
// the first shard's arrival time (at least hedgeMin) after the start.
func (e *Engine) shallowStripe(ctx context.Context, j chunkJob, coder *erasure.Coder, si int, shards [][]byte, refused *[]int, mu *sync.Mutex) int {
	k, n := coder.K(), coder.N()
	sctx, cancel := context.WithCancel(ctx)
	type answer struct {
		i       int
		data    []byte
		corrupt bool
	}
	res := make(chan answer, n)
	// Shards read into the chunk's own buffer (j.dst) must have landed
	// before it is decoded: stragglers are cancelled, then waited for.
	// Elsewhere they are left; their answers land in the channel's buffer.
	var wg sync.WaitGroup
	if j.dst != nil {
		defer wg.Wait()
	}
	defer cancel()
	next := 0
	size := coder.Layout(j.ent.SealedLen)[si].ShardSize
	order := e.localFirst(ctx, j, si, n)
	xc := xfer.From(ctx)
	launch := func(hedge bool) {
		i := order[next]
		next++
		xc.Asked(hedge, false)
		wg.Add(1)
		go func() {
			defer wg.Done()
			raw, corrupt := e.fetchShardData(sctx, j, i, size, false)
			res <- answer{i, raw, corrupt}
		}()
	}
	for next < k {
		launch(false)
	}
	pending, have, hedged := k, 0, false
	start := time.Now()
	var hedge <-chan time.Time
	for have < k && pending > 0 {
		select {
		case a := <-res:
			pending--
			if a.corrupt {
				mu.Lock()
				*refused = append(*refused, a.i)
				mu.Unlock()
			}
			if a.data == nil {
				if next < n {
					launch(false)
					pending++
				}
				continue
			}
			shards[a.i] = a.data
			have++
			if hedge == nil && !hedged {
				hedge = time.After(max(hedgeMin, 3*time.Since(start)))
			}
		case <-hedge:
			hedge, hedged = nil, true
			for x := have; x < k && next < n; x++ {
				launch(true)
				pending++
			}
		case <-ctx.Done():
			return have
		}
	}
	return have
}

// fetchShardData fetches shard i, of size bytes, checked against its digest
// (getBlock). A shard that fails its digest or has the wrong length is a
// failed shard, like a missing one: the caller goes on to the next parity
// shard. corrupt reports a shard the local store holds but that failed its
// checks (rewritten once the chunk has opened).
func (e *Engine) fetchShardData(ctx context.Context, j chunkJob, i, size int, deep bool) (raw []byte, corrupt bool) {
	ent := j.ent
	var hint []byte
	if h := ent.Hints[i]; h != format.NoHint && int(h) < len(j.peers) {
		hint = j.peers[h]
	}
	raw, err := e.getBlock(ctx, blockstore.CIDWith(j.hash, ent.Shards[i]), size, hint, deep, j.inPlace(i))
	if err != nil {
		if !isNotFound(err) && ctx.Err() == nil {
			e.log.Warn("shard read failed", "shard", fmt.Sprintf("%x", ent.Shards[i][:4]), "err", err)
		}
		return nil, errors.Is(err, blockstore.ErrHashMismatch)
	}
	if len(raw) != size {
		// It matches its digest, so the manifest named a block of the
		// wrong size: no source can do better.
		e.log.Warn("shard has the wrong size for its manifest", "shard", fmt.Sprintf("%x", ent.Shards[i][:4]), "size", len(raw), "want", size)
		return nil, false
	}
	return raw, false
}

// fetchShard reads shard i into shards[i].
func (e *Engine) fetchShard(ctx context.Context, j chunkJob, shards [][]byte, i, size int, deep bool) (ok, corrupt bool) {
	raw, corrupt := e.fetchShardData(ctx, j, i, size, deep)
	if raw == nil {
		return false, corrupt
	}
	shards[i] = raw
	return true, false
}

// localFirst orders the shards of stripe si: those this node's store holds
// (parity too), then the others by index (data shards first).
func (e *Engine) localFirst(ctx context.Context, j chunkJob, si, n int) []int {
	order := make([]int, 0, n)
	var rest []int
	for i := si * n; i < si*n+n; i++ {
		if ok, err := e.bs.Has(ctx, blockstore.CIDWith(j.hash, j.ent.Shards[i])); ok && err == nil {
			order = append(order, i)
		} else {
			rest = append(rest, i)
		}
	}
	return append(order, rest...)
}
