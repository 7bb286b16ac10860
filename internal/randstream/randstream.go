// Package randstream makes seeded pseudo-random byte streams for tests and
// benchmarks: an AES-CTR keystream, so that generating input costs little
// next to what is measured, and no file of that size is needed.
package randstream

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"io"
)

var zeros [32 << 10]byte

// Reader streams n bytes determined by seed.
type Reader struct {
	s cipher.Stream
	n int64
}

// New returns a reader of n bytes determined by seed.
func New(seed byte, n int64) *Reader {
	blk, _ := aes.NewCipher(bytes.Repeat([]byte{seed, 1}, 16))
	return &Reader{s: cipher.NewCTR(blk, make([]byte, 16)), n: n}
}

func (r *Reader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.n {
		p = p[:r.n]
	}
	// The keystream XORed with zeros read from a small block that stays
	// in cache: no pass to clear p first.
	for b := p; len(b) > 0; {
		n := min(len(b), len(zeros))
		r.s.XORKeyStream(b[:n], zeros[:n])
		b = b[n:]
	}
	r.n -= int64(len(p))
	return len(p), nil
}

// Bytes returns n bytes determined by seed (the start of New(seed, n)).
func Bytes(seed byte, n int) []byte {
	b := make([]byte, n)
	_, _ = io.ReadFull(New(seed, int64(n)), b)
	return b
}

// At returns n bytes of the stream of seed from offset off, without the
// bytes before it: a test checks random reads of a large stream with it.
func At(seed byte, off int64, n int) []byte {
	blk, _ := aes.NewCipher(bytes.Repeat([]byte{seed, 1}, 16))
	iv := make([]byte, 16)
	binary.BigEndian.PutUint64(iv[8:], uint64(off/16))
	s := cipher.NewCTR(blk, iv)
	skip := make([]byte, off%16)
	s.XORKeyStream(skip, skip)
	b := make([]byte, n)
	s.XORKeyStream(b, b)
	return b
}
