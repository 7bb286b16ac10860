package chunker

import (
	"bytes"
	"fmt"
	"io"
	"math/bits"
	"math/rand/v2"
	"testing"
)

// referenceCuts is docs/format.md's "Chunking" written as plainly as it
// reads: the whole stream in memory, one byte a step. The chunker (a ring
// window, four bytes a step) must cut where it does.
func referenceCuts(data []byte, k *[32]byte, min, avg, max int) []int {
	g := GearTable(k)
	b := bits.TrailingZeros(uint(avg))
	maskS, maskL := topBits(b+2), topBits(b-2)
	var out []int
	for len(data) > 0 {
		n := len(data)
		cut := n
		if n > min {
			n = minInt(n, max)
			cut = n
			var h uint64
			for i := min - 64; i < n; i++ {
				h = h<<1 + g[data[i]]
				if i < min {
					continue
				}
				mask := maskL
				if i < avg {
					mask = maskS
				}
				if h&mask == 0 {
					cut = i + 1
					break
				}
			}
		}
		out = append(out, cut)
		data = data[cut:]
	}
	return out
}

func minInt(a, b int) int {
	if a < b {
		return a
	}
	return b
}

// jerkyReader returns reads of random sizes (1 byte up to 3× the largest
// chunk), so that the ring's wrap falls anywhere in a cut.
type jerkyReader struct {
	r   io.Reader
	rnd *rand.Rand
	max int
}

func (j *jerkyReader) Read(p []byte) (int, error) {
	n := 1 + j.rnd.IntN(j.max)
	if j.rnd.IntN(4) == 0 {
		n = 1 + j.rnd.IntN(64)
	}
	return j.r.Read(p[:minInt(n, len(p))])
}

// chunkAll cuts data read through r and checks that every chunk holds the
// stream's bytes at its place (the ring's copy across its wrap).
func chunkAll(t testing.TB, r io.Reader, data []byte, k *[32]byte, opts ...Option) []int {
	t.Helper()
	c, err := New(r, k, opts...)
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	pos := 0
	for {
		ch, err := c.NextInto(func(n int) []byte { return make([]byte, n) })
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if ch.Start != uint64(pos) || !bytes.Equal(ch.Data, data[pos:pos+ch.Length]) {
			t.Fatalf("chunk at %d (start %d, %d bytes): wrong bytes", pos, ch.Start, ch.Length)
		}
		pos += ch.Length
		out = append(out, ch.Length)
	}
	if pos != len(data) {
		t.Fatalf("chunks cover %d of %d bytes", pos, len(data))
	}
	return out
}

// TestMatchesReference cuts seeded streams through readers of random read
// sizes, with default sizes and with small ones (hundreds of wraps of the
// ring), and compares with the reference cutter.
func TestMatchesReference(t *testing.T) {
	type sizes struct{ min, avg, max int }
	for _, sz := range []sizes{{MinSize, AvgSize, MaxSize}, {64, 256, 1024}, {100, 128, 300}, {1000, 4096, 5000}} {
		for seed := byte(1); seed <= 3; seed++ {
			n := 20 * sz.max
			if sz.max == MaxSize {
				n = 3*MaxSize + int(seed)*12345
			}
			data := seeded(seed+20, n)
			want := referenceCuts(data, key(seed), sz.min, sz.avg, sz.max)
			opt := WithSizes(sz.min, sz.avg, sz.max)
			r := &jerkyReader{r: bytes.NewReader(data), rnd: rand.New(rand.NewPCG(uint64(seed), 9)), max: 3 * sz.max}
			if got := chunkAll(t, r, data, key(seed), opt); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("sizes %v seed %d: cuts\n%v\nwant\n%v", sz, seed, got, want)
			}
		}
	}
}

// FuzzMatchesReference: any stream, any read pattern, small chunk sizes.
func FuzzMatchesReference(f *testing.F) {
	f.Add([]byte("hello"), uint64(1))
	f.Add(bytes.Repeat([]byte{0}, 5000), uint64(2))
	f.Add(seeded(9, 3000), uint64(3))
	f.Fuzz(func(t *testing.T, data []byte, seed uint64) {
		k := key(byte(seed))
		want := referenceCuts(data, k, 64, 128, 256)
		r := &jerkyReader{r: bytes.NewReader(data), rnd: rand.New(rand.NewPCG(seed, 1)), max: 700}
		if got := chunkAll(t, r, data, k, WithSizes(64, 128, 256)); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("cuts %v, want %v", got, want)
		}
	})
}
