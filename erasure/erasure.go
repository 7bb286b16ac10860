package erasure

import (
	"fmt"
	"sync"

	"github.com/klauspost/reedsolomon"

	"github.com/umbra-store/umbra/internal/kind"
)

// MaxShardSize is the largest shard a stripe produces, in bytes.
const MaxShardSize = 2 << 20

// MaxShards is the largest k+m (GF(2^8) Reed-Solomon).
const MaxShards = 256

// Errors.
var (
	// ErrParams is returned by New for k < 1, m < 0 or k+m > 256.
	ErrParams = kind.New(kind.Usage, "erasure: invalid shard counts")
	// ErrTooFewShards is returned (wrapped, naming the stripe) by Decode when
	// fewer than k shards of a stripe are present.
	ErrTooFewShards = kind.New(kind.NotFound, "erasure: too few shards to reconstruct")
)

// StripeError names the stripe that could not be rebuilt.
type StripeError struct {
	Stripe, Have, Need int
}

func (e *StripeError) Error() string {
	return fmt.Sprintf("erasure: stripe %d: %d of %d shards needed are available", e.Stripe, e.Have, e.Need)
}

func (e *StripeError) Unwrap() error { return ErrTooFewShards }

// Coder stripes data into k+m shards.
type Coder struct {
	k, m int
	enc  reedsolomon.Encoder
}

// Coders are kept for reuse (building the matrix costs more than a small
// encode), at most maxCoders of them: k and m come from manifests, which
// whoever made a capability chose, so the cache must not grow with them.
const maxCoders = 32

var (
	codersMu sync.Mutex
	coders   = map[[2]int]*Coder{}
)

// New returns a coder for k data and m parity shards: 1 ≤ k, 0 ≤ m,
// k+m ≤ MaxShards.
func New(k, m int) (*Coder, error) {
	if k < 1 || m < 0 || k+m > MaxShards {
		return nil, fmt.Errorf("%w: %d+%d (want K ≥ 1, M ≥ 0, K+M ≤ %d)", ErrParams, k, m, MaxShards)
	}
	codersMu.Lock()
	c, ok := coders[[2]int{k, m}]
	codersMu.Unlock()
	if ok {
		return c, nil
	}
	c = &Coder{k: k, m: m}
	if m > 0 {
		// NB: no inversion cache. The library keeps, without bound, the
		// decode matrix of every pattern of missing shards it has seen; a
		// crafted manifest chooses both k and which shards are missing.
		// Inverting a k×k matrix per decoded stripe costs little next to
		// decoding it. Parity is the same either way.
		enc, err := reedsolomon.New(k, m, reedsolomon.WithInversionCache(false))
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrParams, err)
		}
		c.enc = enc
	}
	codersMu.Lock()
	if len(coders) < maxCoders {
		coders[[2]int{k, m}] = c
	}
	codersMu.Unlock()
	return c, nil
}

// K returns the number of data shards per stripe.
func (c *Coder) K() int { return c.k }

// M returns the number of parity shards per stripe.
func (c *Coder) M() int { return c.m }

// N returns k+m.
func (c *Coder) N() int { return c.k + c.m }

// Stripe is the position of one stripe in a chunk.
type Stripe struct {
	Offset, Length int // bytes of the chunk it carries
	ShardSize      int
}

// Layout returns the stripes of a chunk of n bytes: consecutive runs of at
// most k×MaxShardSize bytes, each with shard size ceil(length/k).
func (c *Coder) Layout(n int) []Stripe {
	per := c.k * MaxShardSize
	if n == 0 {
		return []Stripe{{ShardSize: 1}}
	}
	out := make([]Stripe, 0, (n+per-1)/per)
	for off := 0; off < n; off += per {
		l := min(per, n-off)
		out = append(out, Stripe{Offset: off, Length: l, ShardSize: (l + c.k - 1) / c.k})
	}
	return out
}

// ShardCount is the number of shards of a chunk of n bytes.
func (c *Coder) ShardCount(n int) int { return len(c.Layout(n)) * c.N() }

// EncodedLen is the scratch size Encode needs for a chunk of n bytes.
func (c *Coder) EncodedLen(n int) int {
	t := 0
	for _, s := range c.Layout(n) {
		t += s.ShardSize * c.N()
	}
	return t
}

// Encode stripes data into shards, stripe after stripe (shard j of stripe s
// is shards[s*N()+j]; the first k of a stripe are data). The shards are cut
// from scratch, which must hold EncodedLen(len(data)) bytes; data is copied,
// unless it already lies where its stripe goes (a one-stripe chunk at the
// start of scratch: encoding in place).
func (c *Coder) Encode(scratch, data []byte) ([][]byte, error) {
	lay := c.Layout(len(data))
	if len(scratch) < c.EncodedLen(len(data)) {
		return nil, fmt.Errorf("erasure: scratch of %d bytes, need %d", len(scratch), c.EncodedLen(len(data)))
	}
	shards := make([][]byte, 0, len(lay)*c.N())
	p := 0
	for _, s := range lay {
		blk := scratch[p : p+s.ShardSize*c.N()]
		p += len(blk)
		n := s.Length
		if src := data[s.Offset : s.Offset+s.Length]; n > 0 && &blk[0] != &src[0] {
			copy(blk, src)
		}
		clear(blk[n : s.ShardSize*c.k])
		st := make([][]byte, c.N())
		for j := range st {
			st[j] = blk[j*s.ShardSize : (j+1)*s.ShardSize : (j+1)*s.ShardSize]
		}
		if c.m > 0 {
			if err := c.enc.Encode(st); err != nil {
				return nil, fmt.Errorf("erasure: encode: %w", err)
			}
		}
		shards = append(shards, st...)
	}
	return shards, nil
}

// Decode rebuilds a chunk of n bytes from its shards (laid out as Encode
// returns them; nil marks a missing shard) into dst, which must hold n bytes.
// Missing data shards are reconstructed when at least k shards of their
// stripe are present; otherwise a *StripeError (wrapping ErrTooFewShards)
// names the first stripe that cannot be rebuilt. Reconstructed shards are
// written into shards, so a caller can store them again (repair); they lie
// in dst where it has room (its capacity beyond n included). A data shard
// given may lie in dst at the very place Decode would copy it to (the
// caller read it there: no copy is made); no other shard given may lie in
// dst.
func (c *Coder) Decode(dst []byte, shards [][]byte, n int) ([]byte, error) {
	lay := c.Layout(n)
	if len(shards) != len(lay)*c.N() {
		return nil, fmt.Errorf("erasure: %d shards for %d stripes of %d", len(shards), len(lay), c.N())
	}
	dst = dst[:n]
	for si, s := range lay {
		st := shards[si*c.N() : (si+1)*c.N()]
		have, dataOK := 0, true
		for j, sh := range st {
			if sh != nil {
				if len(sh) != s.ShardSize {
					return nil, fmt.Errorf("erasure: stripe %d shard %d is %d bytes, want %d", si, j, len(sh), s.ShardSize)
				}
				have++
			} else if j < c.k {
				dataOK = false
			}
		}
		if have < c.k {
			return nil, &StripeError{Stripe: si, Have: have, Need: c.k}
		}
		if !dataOK {
			for j := range c.k {
				// Rebuilt in place when its bytes stay in this stripe's
				// (or, for the last stripe, past n within cap(dst)): the
				// next stripe's data shards may already lie in dst, read
				// there by the caller, and fill must not spill over them.
				at, end := s.Offset+j*s.ShardSize, s.Offset+(j+1)*s.ShardSize
				if st[j] == nil && end <= cap(dst) && (end <= s.Offset+s.Length || si == len(lay)-1) {
					st[j] = dst[at:at]
				}
			}
			if err := c.enc.ReconstructData(st); err != nil {
				return nil, fmt.Errorf("erasure: stripe %d: %w", si, err)
			}
		}
		out := dst[s.Offset : s.Offset+s.Length]
		for j := 0; j < c.k && len(out) > 0; j++ {
			if &out[0] == &st[j][0] { // rebuilt in place
				out = out[min(len(out), len(st[j])):]
				continue
			}
			out = out[copy(out, st[j]):]
		}
	}
	return dst, nil
}

// Rebuild reconstructs every missing shard (data and parity) of the chunk in
// place, for repair.
func (c *Coder) Rebuild(shards [][]byte, n int) error {
	lay := c.Layout(n)
	for si := range lay {
		st := shards[si*c.N() : (si+1)*c.N()]
		have := 0
		for _, sh := range st {
			if sh != nil {
				have++
			}
		}
		if have < c.k {
			return &StripeError{Stripe: si, Have: have, Need: c.k}
		}
		if have < c.N() {
			if err := c.enc.Reconstruct(st); err != nil {
				return fmt.Errorf("erasure: stripe %d: %w", si, err)
			}
		}
	}
	return nil
}
