package erasure

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/umbra-store/umbra/internal/randstream"
)

func data(seed uint64, n int) []byte { return randstream.Bytes(byte(seed), n) }

func TestParams(t *testing.T) {
	for _, c := range []struct {
		k, m int
		ok   bool
	}{{1, 0, true}, {3, 2, true}, {1, 255, true}, {256, 0, true}, {0, 1, false}, {3, -1, false}, {200, 57, false}} {
		_, err := New(c.k, c.m)
		if (err == nil) != c.ok || (err != nil && !errors.Is(err, ErrParams)) {
			t.Errorf("New(%d, %d) = %v", c.k, c.m, err)
		}
	}
}

func TestLayout(t *testing.T) {
	c, _ := New(3, 2)
	if l := c.Layout(1 << 20); len(l) != 1 || l[0].ShardSize != (1<<20+2)/3 {
		t.Fatalf("1 MiB at 3+2: %+v", l)
	}
	c1, _ := New(1, 0)
	l := c1.Layout(5<<20 + 1)
	if len(l) != 3 || l[0].ShardSize != MaxShardSize || l[2].Length != 1<<20+1 {
		t.Fatalf("5 MiB+1 at 1+0: %+v", l)
	}
	for _, s := range l {
		if s.ShardSize > MaxShardSize {
			t.Fatalf("shard of %d bytes", s.ShardSize)
		}
	}
}

// TestSeededLoss drops up to m shards of every stripe at random (seeded) and
// checks exact recovery; m+1 losses fail naming the stripe.
func TestSeededLoss(t *testing.T) {
	for _, km := range [][2]int{{3, 2}, {1, 0}, {1, 2}, {4, 4}, {10, 4}, {17, 3}} {
		k, m := km[0], km[1]
		for _, n := range []int{1, 2, k, 1000, 1 << 20, k*MaxShardSize + 5} {
			t.Run(fmt.Sprintf("%d+%d/%d", k, m, n), func(t *testing.T) {
				c, err := New(k, m)
				if err != nil {
					t.Fatal(err)
				}
				in := data(uint64(n), n)
				shards, err := c.Encode(make([]byte, c.EncodedLen(n)), in)
				if err != nil {
					t.Fatal(err)
				}
				rng := rand.New(rand.NewPCG(uint64(k*1000+m), uint64(n)))
				lost := make([][]byte, len(shards))
				copy(lost, shards)
				for s := 0; s < len(shards)/c.N(); s++ {
					for _, j := range rng.Perm(c.N())[:rng.IntN(m+1)] {
						lost[s*c.N()+j] = nil
					}
				}
				// Into a dst with no room to spare, and into one (holding
				// garbage) with room to rebuild shards in place.
				spare := bytes.Repeat([]byte{0xa5}, n+c.K()*MaxShardSize)[:n]
				for _, dst := range [][]byte{make([]byte, n), spare} {
					out, err := c.Decode(dst, slices.Clone(lost), n)
					if err != nil || !bytes.Equal(out, in) {
						t.Fatalf("decode after loss (cap %d): %v", cap(dst), err)
					}
				}
				// m+1 losses in the last stripe.
				last := len(shards)/c.N() - 1
				for j := 0; j <= m && j < c.N(); j++ {
					lost[last*c.N()+j] = nil
				}
				_, err = c.Decode(make([]byte, n), lost, n)
				var se *StripeError
				if !errors.As(err, &se) || se.Stripe != last || !errors.Is(err, ErrTooFewShards) {
					t.Fatalf("m+1 losses: %v", err)
				}
			})
		}
	}
}

func TestRebuildRestoresEveryShard(t *testing.T) {
	c, _ := New(3, 2)
	in := data(1, 100000)
	shards, _ := c.Encode(make([]byte, c.EncodedLen(len(in))), in)
	orig := make([][]byte, len(shards))
	for i := range shards {
		orig[i] = bytes.Clone(shards[i])
	}
	shards[0], shards[4] = nil, nil
	if err := c.Rebuild(shards, len(in)); err != nil {
		t.Fatal(err)
	}
	for i := range shards {
		if !bytes.Equal(shards[i], orig[i]) {
			t.Fatalf("shard %d differs after rebuild", i)
		}
	}
}

// TestParityKnownAnswer pins the parity of a small stripe.
func TestParityKnownAnswer(t *testing.T) {
	c, _ := New(3, 2)
	shards, _ := c.Encode(make([]byte, c.EncodedLen(9)), []byte("umbra-rs!"))
	if got := fmt.Sprintf("%x %x", shards[3], shards[4]); got != "757f6e 5f49b7" {
		t.Fatalf("parity changed: %s", got)
	}
}

// TestEncodeInPlace encodes a one-stripe chunk already at the start of the
// scratch: the shards match those of encoding a separate copy.
func TestEncodeInPlace(t *testing.T) {
	c, _ := New(3, 2)
	in := data(3, 1<<20+5)
	want, _ := c.Encode(make([]byte, c.EncodedLen(len(in))), in)
	scratch := make([]byte, c.EncodedLen(len(in)))
	copy(scratch, in)
	got, err := c.Encode(scratch, scratch[:len(in)])
	if err != nil || len(got) != len(want) {
		t.Fatalf("%d shards, %v", len(got), err)
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("shard %d differs when encoding in place", i)
		}
	}
}

func BenchmarkEncode3x2x1M(b *testing.B) {
	c, _ := New(3, 2)
	in := data(1, 1<<20)
	scratch := make([]byte, c.EncodedLen(len(in)))
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := c.Encode(scratch, in); err != nil {
			b.Fatal(err)
		}
	}
}

// TestDecodeReadInPlace: data shards the caller read straight into dst, at
// the place Decode would copy them to, are used there (no copy), beside
// shards lost and rebuilt, parity held elsewhere, and several stripes.
func TestDecodeReadInPlace(t *testing.T) {
	for _, km := range [][2]int{{3, 2}, {1, 1}, {2, 2}} {
		k, m := km[0], km[1]
		for _, n := range []int{1, 1000, 1 << 20, 2*k*MaxShardSize + 7} {
			t.Run(fmt.Sprintf("%d+%d/%d", k, m, n), func(t *testing.T) {
				c, _ := New(k, m)
				in := data(uint64(n)+7, n)
				shards, err := c.Encode(make([]byte, c.EncodedLen(n)), in)
				if err != nil {
					t.Fatal(err)
				}
				lay := c.Layout(n)
				lastS := lay[len(lay)-1]
				for seed := range uint64(4) {
					rng := rand.New(rand.NewPCG(seed, uint64(n)))
					dst := bytes.Repeat([]byte{0x5a}, lastS.Offset+k*lastS.ShardSize)[:n]
					given := make([][]byte, len(shards))
					for si, s := range lay {
						lost := rng.Perm(c.N())[:rng.IntN(m+1)]
						for j := range c.N() {
							i := si*c.N() + j
							switch {
							case slices.Contains(lost, j):
							case j < k:
								at := s.Offset + j*s.ShardSize
								place := dst[at : at+s.ShardSize : at+s.ShardSize]
								copy(place, shards[i])
								given[i] = place
							default:
								given[i] = bytes.Clone(shards[i])
							}
						}
					}
					out, err := c.Decode(dst, given, n)
					if err != nil || !bytes.Equal(out, in) {
						t.Fatalf("seed %d: decode with shards in place: %v", seed, err)
					}
				}
			})
		}
	}
}
