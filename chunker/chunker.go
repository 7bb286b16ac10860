package chunker

import (
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
)

// Default chunk sizes, in bytes.
const (
	MinSize = 256 << 10
	AvgSize = 1 << 20
	MaxSize = 4 << 20
)

// minWindow is the read-ahead window's first size.
const minWindow = 64 << 10

// gearInfo is the HKDF info that derives the gear table from the key.
const gearInfo = "umbra chunker gear v1"

// ErrBufferTooSmall is returned by Next when the caller's buffer cannot hold
// a chunk of the maximum size, and by NextInto when the buffer it got cannot
// hold the chunk.
var ErrBufferTooSmall = errors.New("chunker: buffer smaller than the maximum chunk size")

// Chunk is one cut of the stream. Data aliases the buffer passed to Next.
type Chunk struct {
	Start  uint64 // offset of the first byte in the stream
	Length int
	Data   []byte
}

// Option configures a Chunker.
type Option func(*config) error

type config struct{ min, avg, max int }

// WithSizes sets the minimum, average and maximum chunk size. avg must be a
// power of two, and min < avg < max. Default: MinSize, AvgSize, MaxSize.
func WithSizes(min, avg, max int) Option {
	return func(c *config) error {
		if min < 64 || min >= avg || avg >= max || bits.OnesCount(uint(avg)) != 1 || avg < 64 {
			return fmt.Errorf("chunker: bad sizes min=%d avg=%d max=%d (want 64 ≤ min < avg < max, avg a power of two)", min, avg, max)
		}
		c.min, c.avg, c.max = min, avg, max
		return nil
	}
}

// Chunker reads a stream and returns its chunks in order.
type Chunker struct {
	r             io.Reader
	gear          [256]uint64
	min, avg, max int
	maskS, maskL  uint64
	// buf is the read-ahead window, a ring grown as needed up to 2*max:
	// the unread bytes are the have bytes from buf[start], wrapping at
	// the end. A ring, not a sliding window, so that no byte is moved
	// before it is cut.
	buf         []byte
	start, have int
	eof         bool
	pos         uint64
	err         error
}

// New returns a chunker over r whose cut points are keyed by key.
func New(r io.Reader, key *[32]byte, opts ...Option) (*Chunker, error) {
	cfg := config{min: MinSize, avg: AvgSize, max: MaxSize}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	c := &Chunker{r: r, min: cfg.min, avg: cfg.avg, max: cfg.max}
	c.gear = GearTable(key)
	// Normalised chunking (level 2): before the average size a cut needs two
	// more zero bits than log2(avg), after it two fewer. The masks take the
	// top bits of the gear hash: bit 63-i depends on the last 64-i bytes, so
	// the top bits see the widest window.
	b := bits.TrailingZeros(uint(cfg.avg))
	c.maskS = topBits(b + 2)
	c.maskL = topBits(b - 2)
	return c, nil
}

func topBits(n int) uint64 {
	if n <= 0 {
		return 0
	}
	if n >= 64 {
		return ^uint64(0)
	}
	return ^uint64(0) << (64 - n)
}

// GearTable derives the 256 gear values from key: HKDF-SHA256(key, info =
// "umbra chunker gear v1") expanded to 2048 bytes, read as little-endian
// uint64s.
func GearTable(key *[32]byte) [256]uint64 {
	raw, err := hkdf.Key(sha256.New, key[:], nil, gearInfo, 256*8)
	if err != nil {
		panic("chunker: hkdf: " + err.Error())
	}
	var g [256]uint64
	for i := range g {
		g[i] = binary.LittleEndian.Uint64(raw[i*8:])
	}
	return g
}

// MaxSize returns the largest chunk this chunker returns: the size Next's
// buffer must have.
func (c *Chunker) MaxSize() int { return c.max }

// fill reads until the window holds at least max bytes or the stream ends.
func (c *Chunker) fill() error {
	for c.have < c.max && !c.eof {
		if c.have == len(c.buf) {
			// Grown on demand: a small file does not pay for (and zero) a
			// window of twice the largest chunk. Never full once grown:
			// have < max ≤ len(buf)/2.
			nb := make([]byte, min(max(2*len(c.buf), minWindow), 2*c.max))
			a, b := c.window(c.have)
			copy(nb[copy(nb, a):], b)
			c.buf, c.start = nb, 0
		}
		if c.have == 0 {
			c.start = 0 // one long read instead of two around the wrap
		}
		var free []byte
		if end := c.start + c.have; end < len(c.buf) {
			free = c.buf[end:]
		} else {
			free = c.buf[end-len(c.buf) : c.start]
		}
		n, err := c.r.Read(free)
		c.have += n
		if errors.Is(err, io.EOF) {
			c.eof = true
		} else if err != nil {
			return err
		}
	}
	return nil
}

// window returns the first n unread bytes as the two pieces of the ring
// they lie in (b is empty unless they wrap).
func (c *Chunker) window(n int) (a, b []byte) {
	if end := c.start + n; end > len(c.buf) {
		return c.buf[c.start:], c.buf[:end-len(c.buf)]
	}
	return c.buf[c.start : c.start+n], nil
}

// Next copies the next chunk into buf (which must hold MaxSize bytes) and
// returns it. At the end of the stream it returns io.EOF. An empty stream has
// no chunks.
func (c *Chunker) Next(buf []byte) (Chunk, error) {
	if c.err != nil {
		return Chunk{}, c.err
	}
	if len(buf) < c.max {
		return Chunk{}, ErrBufferTooSmall
	}
	return c.NextInto(func(int) []byte { return buf })
}

// NextInto is Next with the chunk copied into a buffer from get, called
// with the chunk's length (and only when there is a chunk) and returning at
// least that many bytes: a small file's chunk needs no buffer of MaxSize.
func (c *Chunker) NextInto(get func(n int) []byte) (Chunk, error) {
	if c.err != nil {
		return Chunk{}, c.err
	}
	if err := c.fill(); err != nil {
		c.err = fmt.Errorf("chunker: read: %w", err)
		return Chunk{}, c.err
	}
	if c.have == 0 {
		c.err = io.EOF
		return Chunk{}, io.EOF
	}
	cut := c.cut(c.window(min(c.have, c.max)))
	buf := get(cut)
	if len(buf) < cut {
		return Chunk{}, ErrBufferTooSmall
	}
	ch := Chunk{Start: c.pos, Length: cut, Data: buf[:cut]}
	a, b := c.window(cut)
	copy(ch.Data[copy(ch.Data, a):], b)
	c.start = (c.start + cut) % len(c.buf)
	c.have -= cut
	c.pos += uint64(cut)
	return ch, nil
}

// cut returns the length of the chunk at the start of the stream, whose
// next bytes are a ‖ b (at most max of them).
func (c *Chunker) cut(a, b []byte) int {
	n := len(a) + len(b)
	if n <= c.min {
		return n
	}
	normal := min(c.avg, n)
	g := &c.gear
	// Cut-point skipping: the hash only needs the last 64 bytes before a
	// candidate (each byte's term is shifted out 64 bytes later), so start
	// hashing 64 bytes before the minimum size.
	var h uint64
	for i := c.min - 64; i < c.min; i++ {
		if i < len(a) {
			h = h<<1 + g[a[i]]
		} else {
			h = h<<1 + g[b[i-len(a)]]
		}
	}
	h, at := scanRange(g, h, a, b, c.min, normal, c.maskS)
	if at >= 0 {
		return at
	}
	if _, at = scanRange(g, h, a, b, normal, n, c.maskL); at >= 0 {
		return at
	}
	return n
}

// scanRange feeds bytes [lo, hi) of a ‖ b into h and returns the position
// just past the first byte after which h&mask == 0, or -1 (with the hash
// so far) if there is none.
func scanRange(g *[256]uint64, h uint64, a, b []byte, lo, hi int, mask uint64) (uint64, int) {
	if lo < len(a) {
		top := min(hi, len(a))
		var at int
		if h, at = scan(g, h, a[lo:top], mask); at >= 0 {
			return h, lo + at
		}
		lo = top
	}
	if lo < hi {
		var at int
		if h, at = scan(g, h, b[lo-len(a):hi-len(a)], mask); at >= 0 {
			return h, lo + at
		}
	}
	return h, -1
}

// scan is the gear hash's inner loop: h = h<<1 + gear[byte], checked after
// every byte. Four bytes a step, whose hashes are computed from h and not
// from each other (h<<2 + (g0<<1 + g1), ...): the serial dependency is one
// shift and add per four bytes, and the values (and cut points) are those
// of one byte a step.
func scan(g *[256]uint64, h uint64, p []byte, mask uint64) (uint64, int) {
	i := 0
	for ; i <= len(p)-4; i += 4 {
		g0, g1, g2, g3 := g[p[i]], g[p[i+1]], g[p[i+2]], g[p[i+3]]
		a2 := g0<<1 + g1
		a4 := a2<<2 + (g2<<1 + g3)
		h1 := h<<1 + g0
		h2 := h<<2 + a2
		h3 := h2<<1 + g2
		if h1&mask == 0 {
			return h1, i + 1
		}
		if h2&mask == 0 {
			return h2, i + 2
		}
		if h3&mask == 0 {
			return h3, i + 3
		}
		if h = h<<4 + a4; h&mask == 0 {
			return h, i + 4
		}
	}
	for ; i < len(p); i++ {
		if h = h<<1 + g[p[i]]; h&mask == 0 {
			return h, i + 1
		}
	}
	return h, -1
}
