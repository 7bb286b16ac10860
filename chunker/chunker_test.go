package chunker

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
	"testing/iotest"
)

// seeded returns ChaCha8-seeded bytes: the known-answer cut points of
// docs/format.md ("Chunking") are defined over this stream, so it stays
// ChaCha8 rather than internal/randstream.
func seeded(seed byte, n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{seed}).Read(b)
	return b
}

func key(b byte) *[32]byte {
	var k [32]byte
	for i := range k {
		k[i] = b
	}
	return &k
}

func cuts(t testing.TB, data []byte, k *[32]byte, opts ...Option) []int {
	t.Helper()
	c, err := New(bytes.NewReader(data), k, opts...)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, c.MaxSize())
	var out []int
	var pos uint64
	for {
		ch, err := c.Next(buf)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if ch.Start != pos || ch.Length != len(ch.Data) || !bytes.Equal(ch.Data, data[pos:pos+uint64(ch.Length)]) {
			t.Fatalf("chunk at %d: start %d, length %d: data mismatch", pos, ch.Start, ch.Length)
		}
		pos += uint64(ch.Length)
		out = append(out, ch.Length)
	}
	if pos != uint64(len(data)) {
		t.Fatalf("chunks cover %d of %d bytes", pos, len(data))
	}
	return out
}

// TestKnownAnswer pins the cut points of 24 MiB of seeded data under a fixed
// key. A change here changes every convergent capability: it needs a new
// format version.
func TestKnownAnswer(t *testing.T) {
	data := seeded(1, 24<<20)
	got := cuts(t, data, key(0x42))
	h := sha256.New()
	for _, n := range got {
		fmt.Fprintf(h, "%d,", n)
	}
	const wantFirst = "[1120074 1298729 1057373 1057100 2072987 1551754 1100122 947937]"
	const wantDigest = "0b3597b826a464fa6bd5dd1e072ccb2965fc2047ba1cee2ce02a2cb9ecac601d"
	first := fmt.Sprint(got[:min(8, len(got))])
	digest := fmt.Sprintf("%x", h.Sum(nil))
	if first != wantFirst || digest != wantDigest {
		t.Fatalf("cut points changed:\nfirst %s\ndigest %s", first, digest)
	}
}

func TestGearTableKnownAnswer(t *testing.T) {
	g := GearTable(key(0x42))
	if got := fmt.Sprintf("%016x %016x %016x", g[0], g[1], g[255]); got != "396f97a32cc4dcb8 1c23e5fda11fe76c f6e00ced6a11043f" {
		t.Fatalf("gear table changed: %s", got)
	}
}

func TestSizesWithinBounds(t *testing.T) {
	data := seeded(2, 64<<20)
	got := cuts(t, data, key(1))
	total := 0
	for i, n := range got {
		total += n
		if n > MaxSize || (n < MinSize && i != len(got)-1) {
			t.Fatalf("chunk %d is %d bytes", i, n)
		}
	}
	avg := total / len(got)
	if avg < AvgSize/2 || avg > AvgSize*2 {
		t.Fatalf("average chunk %d bytes, want about %d", avg, AvgSize)
	}
}

func TestKeyChangesCuts(t *testing.T) {
	data := seeded(3, 16<<20)
	a := cuts(t, data, key(1))
	b := cuts(t, data, key(2))
	if fmt.Sprint(a) == fmt.Sprint(b) {
		t.Fatal("different keys gave the same cut points")
	}
	if fmt.Sprint(a) != fmt.Sprint(cuts(t, data, key(1))) {
		t.Fatal("same key, same data: different cuts")
	}
}

func boundaries(lengths []int) map[int]bool {
	m := map[int]bool{}
	pos := 0
	for _, n := range lengths {
		pos += n
		m[pos] = true
	}
	return m
}

// TestInsertionIsLocal inserts bytes near the start of a 32 MiB stream: every
// cut point after the next few stays (shifted by the insertion).
func TestInsertionIsLocal(t *testing.T) {
	data := seeded(4, 32<<20)
	ins := []byte("inserted bytes!")
	at := 300 << 10
	edited := append(append(append([]byte{}, data[:at]...), ins...), data[at:]...)
	before := cuts(t, data, key(5))
	after := boundaries(cuts(t, edited, key(5)))
	moved, pos := 0, 0
	for _, n := range before {
		pos += n
		if pos <= at {
			continue
		}
		if !after[pos+len(ins)] {
			moved++
		}
	}
	if moved > 2 {
		t.Fatalf("%d of %d cut points moved after a %d-byte insertion", moved, len(before), len(ins))
	}
}

func TestEdgeSizes(t *testing.T) {
	for _, n := range []int{0, 1, MinSize - 1, MinSize, MinSize + 1, MaxSize - 1, MaxSize, MaxSize + 1, 3*MaxSize + 7} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			got := cuts(t, seeded(6, n), key(7))
			if n == 0 && len(got) != 0 {
				t.Fatalf("empty stream gave %d chunks", len(got))
			}
			if n > 0 && n <= MinSize && len(got) != 1 {
				t.Fatalf("%d bytes gave %d chunks, want 1", n, len(got))
			}
		})
	}
}

func TestShortReads(t *testing.T) {
	data := seeded(8, 9<<20)
	want := cuts(t, data, key(9))
	// A reader that returns small pieces gives the same cuts.
	c, err := New(iotest.HalfReader(bytes.NewReader(data)), key(9))
	if err != nil {
		t.Fatal(err)
	}
	if got := lengths(t, c); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatal("short reads changed the cut points")
	}
}

// lengths drains c and returns its chunk lengths.
func lengths(t testing.TB, c *Chunker) []int {
	t.Helper()
	buf := make([]byte, c.MaxSize())
	var out []int
	for {
		ch, err := c.Next(buf)
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ch.Length)
	}
}

func TestErrors(t *testing.T) {
	if _, err := New(bytes.NewReader(nil), key(1), WithSizes(100, 300, 1000)); err == nil {
		t.Fatal("avg not a power of two accepted")
	}
	if _, err := New(bytes.NewReader(nil), key(1), WithSizes(10, 64, 128)); err == nil {
		t.Fatal("min < 64 accepted")
	}
	c, _ := New(bytes.NewReader([]byte("x")), key(1))
	if _, err := c.Next(make([]byte, 10)); !errors.Is(err, ErrBufferTooSmall) {
		t.Fatalf("small buffer: %v", err)
	}
	boom := errors.New("disk on fire")
	c, _ = New(iotest.ErrReader(boom), key(1))
	if _, err := c.Next(make([]byte, MaxSize)); !errors.Is(err, boom) {
		t.Fatalf("read error: %v", err)
	}
}

func BenchmarkChunker(b *testing.B) {
	data := seeded(1, 64<<20)
	buf := make([]byte, MaxSize)
	b.SetBytes(int64(len(data)))
	for i := 0; i < b.N; i++ {
		c, _ := New(bytes.NewReader(data), key(1))
		for {
			if _, err := c.Next(buf); err != nil {
				break
			}
		}
	}
}

// TestNextInto: NextInto cuts as Next does, asks for a buffer of exactly
// the chunk's length (none at the end), and refuses a buffer too small
// without consuming the chunk.
func TestNextInto(t *testing.T) {
	data := seeded(7, 9<<20+12345)
	want := cuts(t, data, key(1))
	c, err := New(bytes.NewReader(data), key(1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.NextInto(func(n int) []byte { return make([]byte, n-1) }); !errors.Is(err, ErrBufferTooSmall) {
		t.Fatalf("short buffer: %v", err)
	}
	var got []int
	var pos int
	for {
		asked := -1
		ch, err := c.NextInto(func(n int) []byte { asked = n; return make([]byte, n) })
		if err == io.EOF {
			if asked != -1 {
				t.Fatalf("a buffer of %d asked for at the end", asked)
			}
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if asked != ch.Length || !bytes.Equal(ch.Data, data[pos:pos+ch.Length]) {
			t.Fatalf("chunk at %d: asked %d for %d bytes, or data mismatch", pos, asked, ch.Length)
		}
		pos += ch.Length
		got = append(got, ch.Length)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("cuts %v, Next cut %v", got, want)
	}
}
