package fuse

import (
	"context"
	"io"
	"sort"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// The read path: a file's chunk offsets, chunk-aligned reads through the
// mount's cache, read-ahead in groups.

// chunks returns the chunks' offsets of the file at ref, read once (and
// not under the file's lock: the manifest may be slow to come).
func (f *fileNode) chunks(ctx context.Context, ref string) ([]int64, error) {
	f.mu.Lock()
	if f.starts != nil && f.startsRef == ref {
		defer f.mu.Unlock()
		return f.starts, nil
	}
	f.mu.Unlock()
	sizes, err := f.m.store.Chunks(ctx, ref)
	if err != nil {
		return nil, err
	}
	starts := make([]int64, len(sizes)+1)
	for i, s := range sizes {
		starts[i+1] = starts[i] + int64(s)
	}
	f.mu.Lock()
	if f.e.Ref == ref {
		f.starts, f.startsRef, f.readAt = starts, ref, make([]int64, len(sizes))
	}
	f.mu.Unlock()
	return starts, nil
}

// chunk returns chunk i of ref, from the cache or fetched, and the func
// that ends the hold on its bytes.
func (f *fileNode) chunk(ctx context.Context, ref string, starts []int64, i int) ([]byte, func(), error) {
	return f.m.cache.get(ctx, chunkKey{ref, i}, func(ctx context.Context) (data, lent []byte, err error) {
		w := &splitter{starts: starts, i: i, last: i + 1}
		w.done = func(_ int, b, l []byte) { data, lent = b, l }
		if err := f.m.store.GetRange(ctx, ref, starts[i], starts[i+1]-starts[i], w); err != nil {
			if lent != nil && f.m.cache.release != nil {
				f.m.cache.release(lent)
			}
			return nil, nil, err
		}
		if w.i != w.last {
			return nil, nil, syscall.EIO
		}
		return data, lent, nil
	})
}

func (f *fileNode) Read(ctx context.Context, _ fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	f.mu.Lock()
	if f.stage != nil {
		defer f.mu.Unlock()
		n, err := f.stage.ReadAt(dest, off)
		if err != nil && err != io.EOF {
			return nil, errno(err, f.m.log)
		}
		return readResult(dest[:n]), 0
	}
	e := f.e
	f.mu.Unlock()
	if e.Ref == "" { // inline
		if off >= int64(len(e.Data)) {
			return readResult(nil), 0
		}
		return readResult(e.Data[off:min(int64(len(e.Data)), off+int64(len(dest)))]), 0
	}
	starts, err := f.chunks(ctx, e.Ref)
	if err != nil {
		return nil, errno(err, f.m.log)
	}
	end := starts[len(starts)-1]
	if off >= end {
		return readResult(nil), 0
	}
	want := min(end, off+int64(len(dest)))
	i := sort.Search(len(starts)-1, func(i int) bool { return starts[i+1] > off })
	// The kernel reads ahead itself, several requests at once and not
	// always in order: a read in the chunk of the last one or the next two
	// is taken as sequential.
	f.mu.Lock()
	sequential := i >= f.lastChunk && i <= f.lastChunk+2
	f.lastChunk = i
	f.mu.Unlock()
	if sequential {
		// After this read's own chunk: ahead fetches must not slow the
		// first byte down.
		defer f.readAhead(e.Ref, starts, i+1)
	}
	// The chunks' bytes, written to the kernel as they are, held until
	// then.
	res := &heldResult{}
	for pos := off; pos < want; i++ {
		data, unhold, err := f.chunk(ctx, e.Ref, starts, i)
		if err != nil {
			res.Done()
			return nil, errno(err, f.m.log)
		}
		res.vecs = append(res.vecs, data[pos-starts[i]:min(want, starts[i+1])-starts[i]])
		if f.m.cache.served(chunkKey{e.Ref, i}, min(want, starts[i+1])-pos) {
			f.wasRead(e.Ref, i)
		}
		res.holds = append(res.holds, unhold)
		pos = starts[i+1]
	}
	return res, 0
}

// readResult answers a read with b, written to the kernel as it is (a
// plain ReadResultData would first be tried for a splice it cannot do).
func readResult(b []byte) fuse.ReadResult { return fuse.ReadResultVector([][]byte{b}) }

// heldResult answers a read with cached chunks' bytes, written to the
// kernel as they are (writev); go-fuse calls Done once they are written,
// which ends the holds on them.
type heldResult struct {
	vecs  [][]byte
	holds []func()
}

func (r *heldResult) Size() int {
	n := 0
	for _, v := range r.vecs {
		n += len(v)
	}
	return n
}

func (r *heldResult) Bytes(buf []byte) ([]byte, fuse.Status) {
	buf = buf[:0]
	for _, v := range r.vecs {
		buf = append(buf, v...)
	}
	return buf, fuse.OK
}

// Slices lets go-fuse write the vector with writev, no copy.
func (r *heldResult) Slices() ([][]byte, fuse.Status) { return r.vecs, fuse.OK }

func (r *heldResult) Done() {
	for _, h := range r.holds {
		h()
	}
	r.holds = nil
}

// groupChunks is how many chunks one read-ahead fetch asks for: one
// request, the daemon's pipeline working on them together.
const groupChunks = 8

// groupBytes bounds one read-ahead request's bytes (with ReadAhead
// requests at most in flight for the whole mount).
const groupBytes = 8 << 20

// recentRead is how long a chunk read whole is taken to be in the kernel's
// page cache: read-ahead does not fetch it again meanwhile. The kernel's
// reads come out of order, so a read behind others finds chunks after it
// already read (and maybe evicted from the chunk cache).
const recentRead = 30 * time.Second

// wasRead notes that chunk i of ref was just read whole.
func (f *fileNode) wasRead(ref string, i int) {
	f.mu.Lock()
	if f.startsRef == ref && i < len(f.readAt) {
		f.readAt[i] = time.Now().UnixNano()
	}
	f.mu.Unlock()
}

// recent reports, for each chunk of ref from i to end, whether it was read
// whole within recentRead.
func (f *fileNode) recent(ref string, i, end int) []bool {
	out := make([]bool, end-i)
	since := time.Now().Add(-recentRead).UnixNano()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.startsRef == ref {
		for j := i; j < end && j < len(f.readAt); j++ {
			out[j-i] = f.readAt[j] > since
		}
	}
	return out
}

// readAhead fetches the chunks from i on, ReadAhead of them and no more
// than a third of what the chunk cache holds (its entries count the
// buffers they lie in, up to twice their bytes), in the background,
// groupChunks (and about groupBytes) per request, at most ReadAhead
// requests at once for the whole mount. Chunks read whole recently are
// skipped. (A window larger than the cache pushed chunks fetched ahead
// out before the kernel read them, and they were fetched again.)
func (f *fileNode) readAhead(ref string, starts []int64, i int) {
	end := min(i+f.m.o.ReadAhead, len(starts)-1)
	for end > i+1 && starts[end]-starts[i] > f.m.cache.max/3 {
		end--
	}
	if end <= i {
		return
	}
	read := f.recent(ref, i, end)
	for j := i; j < end; {
		if read[j-i] {
			j++
			continue
		}
		var ks []chunkKey
		var sizes []int64
		// At most groupChunks chunks, and groupBytes but for one chunk: a
		// crafted manifest's 16 MiB chunks do not make a group of 128 MiB.
		for g := j; g < min(j+groupChunks, end) && !read[g-i] && (g == j || starts[g]-starts[j] < groupBytes); g++ {
			ks = append(ks, chunkKey{ref, g})
			sizes = append(sizes, starts[g+1]-starts[g])
		}
		select {
		case f.m.ahead <- struct{}{}:
		default:
			return // enough in flight
		}
		calls, full := f.m.cache.claim(ks, sizes)
		if len(calls) == 0 {
			<-f.m.ahead
			if full {
				return // what is fetched already is not read yet
			}
			j++
			continue
		}
		go func(first int, calls []*chunkCall) {
			defer func() { <-f.m.ahead }()
			f.fetchGroup(ref, starts, first, calls)
		}(j, calls)
		j += len(calls)
	}
}

// fetchGroup fetches the chunks from first on, one per claimed call, in
// one ranged read, finishing each call as its chunk completes.
func (f *fileNode) fetchGroup(ref string, starts []int64, first int, calls []*chunkCall) {
	last := first + len(calls)
	w := &splitter{starts: starts, i: first, last: last}
	w.done = func(i int, data, lent []byte) { f.m.cache.finish(chunkKey{ref, i}, calls[i-first], data, lent, nil) }
	err := f.m.store.GetRange(f.m.bg, ref, starts[first], starts[last]-starts[first], w)
	if err == nil && w.i != last {
		err = syscall.EIO
	}
	for i := w.i; i < last; i++ {
		f.m.cache.finish(chunkKey{ref, i}, calls[i-first], nil, nil, err)
	}
}

// splitter cuts a ranged read of the chunks before last into chunks; a
// byte more is an error.
type splitter struct {
	starts []int64
	i      int
	last   int
	cur    []byte
	lent   []byte // the store's buffer cur lies in (TakeChunk); nil: ours
	done   func(i int, data, lent []byte)
}

// ReadFrom reads r straight into the chunks' buffers (io.Copy's own buffer
// would be one more copy of every byte).
func (s *splitter) ReadFrom(r io.Reader) (int64, error) {
	var total int64
	for {
		if s.i >= s.last {
			// Past the last chunk: anything more is an error.
			n, err := r.Read(make([]byte, 1))
			if n > 0 {
				return total, io.ErrShortWrite
			}
			if err == io.EOF {
				return total, nil
			}
			return total, err
		}
		size := int(s.starts[s.i+1] - s.starts[s.i])
		if len(s.cur) == size { // an empty chunk
			s.next()
			continue
		}
		n, err := r.Read(s.buffer()[len(s.cur):size])
		s.cur = s.cur[:len(s.cur)+n]
		total += int64(n)
		if len(s.cur) == size {
			s.next()
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// next hands the completed chunk on; the next one's buffer is made when
// its first bytes come (a taken chunk needs none).
func (s *splitter) next() {
	if s.cur == nil { // an empty chunk
		s.cur = []byte{}
	}
	s.done(s.i, s.cur, s.lent)
	s.i++
	s.cur, s.lent = nil, nil
}

// buffer returns the current chunk's buffer, made if need be.
func (s *splitter) buffer() []byte {
	if s.cur == nil {
		s.cur = make([]byte, 0, s.starts[s.i+1]-s.starts[s.i])
	}
	return s.cur
}

// TakeChunk takes a whole chunk's bytes b, lying in the store's buffer
// buf, as they are, with no copy (engine.ChunkTaker: a store in the same
// process lends its buffers; the cache gives buf back once done with it).
// A chunk in a buffer more than twice its size (and 64 KiB) is copied
// instead, so that a small chunk does not pin a large buffer.
func (s *splitter) TakeChunk(b, buf []byte) bool {
	if s.i >= s.last || len(s.cur) != 0 || int64(len(b)) != s.starts[s.i+1]-s.starts[s.i] || cap(buf) > 2*len(b)+64<<10 {
		return false
	}
	s.cur, s.lent = b, buf
	s.next()
	return true
}

func (s *splitter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if s.i >= s.last {
			return n - len(p), io.ErrShortWrite
		}
		size := int(s.starts[s.i+1] - s.starts[s.i])
		take := min(len(p), size-len(s.cur))
		s.cur = append(s.buffer(), p[:take]...)
		p = p[take:]
		if len(s.cur) == size {
			s.next()
		}
	}
	return n, nil
}
