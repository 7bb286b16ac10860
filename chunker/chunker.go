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
	buf           []byte // read-ahead window, grown as needed up to 2*max
	start, end    int    // unread bytes are buf[start:end]
	eof           bool
	pos           uint64
	err           error
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
	if c.end-c.start >= c.max || c.eof {
		return nil
	}
	if c.start > 0 {
		c.end = copy(c.buf, c.buf[c.start:c.end])
		c.start = 0
	}
	for !c.eof {
		if c.end == len(c.buf) {
			// Grown on demand: a small file does not pay for (and zero) a
			// window of twice the largest chunk.
			if len(c.buf) >= 2*c.max {
				break
			}
			nb := make([]byte, min(max(2*len(c.buf), minWindow), 2*c.max))
			copy(nb, c.buf[:c.end])
			c.buf = nb
		}
		n, err := c.r.Read(c.buf[c.end:])
		c.end += n
		if errors.Is(err, io.EOF) {
			c.eof = true
		} else if err != nil {
			return err
		}
		if c.end-c.start >= c.max {
			break
		}
	}
	return nil
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
	n := c.end - c.start
	if n == 0 {
		c.err = io.EOF
		return Chunk{}, io.EOF
	}
	cut := c.cut(c.buf[c.start:c.end])
	buf := get(cut)
	if len(buf) < cut {
		return Chunk{}, ErrBufferTooSmall
	}
	ch := Chunk{Start: c.pos, Length: cut, Data: buf[:cut]}
	copy(ch.Data, c.buf[c.start:c.start+cut])
	c.start += cut
	c.pos += uint64(cut)
	return ch, nil
}

// cut returns the length of the chunk at the start of data.
func (c *Chunker) cut(data []byte) int {
	n := len(data)
	if n <= c.min {
		return n
	}
	if n > c.max {
		n = c.max
	}
	normal := c.avg
	if n < normal {
		normal = n
	}
	var h uint64
	g := &c.gear
	// Cut-point skipping: the hash only needs the last 64 bytes before a
	// candidate, so start hashing 64 bytes before the minimum size.
	i := c.min - 64
	for ; i < c.min; i++ {
		h = (h << 1) + g[data[i]]
	}
	for ; i < normal; i++ {
		h = (h << 1) + g[data[i]]
		if h&c.maskS == 0 {
			return i + 1
		}
	}
	for ; i < n; i++ {
		h = (h << 1) + g[data[i]]
		if h&c.maskL == 0 {
			return i + 1
		}
	}
	return n
}
