package shard

import (
	"math/bits"
	"sync/atomic"
)

// framePool recycles the payload buffers of shard-protocol frames: what a
// receiver reads a STORE into, what a holder reads a block into to serve a
// FETCH, and what the client reads a fetched block into (given back by its
// user through Release). Without it every shard moved costs a fresh,
// zeroed allocation, and the garbage collector — run often under the
// daemon's memory limit — a large share of a transfer's CPU.
//
// Buffers come in power-of-two classes from 64 KiB; what the pool holds is
// capped at poolMax bytes, so it never pins more than that.
type framePool struct {
	classes [poolClasses]chan []byte
	held    atomic.Int64
}

const (
	poolMinShift = 16 // 64 KiB
	poolClasses  = 7  // up to 4 MiB; a larger frame (up to MaxPayload) gets an exact allocation
	poolMax      = 32 << 20
)

var buffers = newFramePool()

func newFramePool() *framePool {
	p := &framePool{}
	for i := range p.classes {
		p.classes[i] = make(chan []byte, 64)
	}
	return p
}

// class returns the class holding n bytes, or -1 when n is out of range.
func class(n int) int {
	if n <= 1<<poolMinShift {
		return 0
	}
	c := bits.Len(uint(n-1)) - poolMinShift
	if c >= poolClasses {
		return -1
	}
	return c
}

// get returns a buffer of length n. Small ones (answers, requests) and ones
// above the largest class are not pooled.
func (p *framePool) get(n int) []byte {
	c := class(n)
	if c < 0 || n < 1<<(poolMinShift-2) {
		return make([]byte, n)
	}
	select {
	case b := <-p.classes[c]:
		p.held.Add(-int64(cap(b)))
		return b[:n]
	default:
		return make([]byte, n, 1<<(c+poolMinShift))
	}
}

// put gives b back. b must not be used afterwards; buffers the pool did not
// hand out are taken when their capacity is exactly a class size.
func (p *framePool) put(b []byte) {
	c := class(cap(b))
	if c < 0 || cap(b) != 1<<(c+poolMinShift) {
		return
	}
	if p.held.Add(int64(cap(b))) > poolMax {
		p.held.Add(-int64(cap(b)))
		return
	}
	select {
	case p.classes[c] <- b[:0]:
	default:
		p.held.Add(-int64(cap(b)))
	}
}

// Buffer returns a buffer of length n from the pool the client reads blocks
// into, for a caller that reads blocks of its own (from a local store, say)
// and gives all of them back the same way.
func Buffer(n int) []byte { return buffers.get(n) }

// Release gives back a block's bytes from Client.Fetch or Buffer once the
// caller is done with them: they are reused for later transfers. b must not
// be used afterwards.
func Release(b []byte) { buffers.put(b) }

// ReleaseExcept gives b back unless it is the caller's buffer into
// (FetchInto), which the pool must never take: a buffer whose capacity
// happened to be a class size would be handed out again while its owner
// still uses it.
func ReleaseExcept(b, into []byte) {
	if Aliases(b, into) {
		return
	}
	Release(b)
}

// Aliases reports whether a and b start at the same byte: a block
// FetchInto returned in the caller's buffer.
func Aliases(a, b []byte) bool {
	return len(a) > 0 && len(b) > 0 && &a[0] == &b[0]
}
