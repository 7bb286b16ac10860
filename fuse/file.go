package fuse

import (
	"bytes"
	"context"
	"io"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/umbra-store/umbra/internal/dirs"
)

// fileNode is a file of the mount: published (by Ref, or inline Data),
// or being written (its content staged until it is uploaded).
type fileNode struct {
	fs.Inode
	m *mount

	mu        sync.Mutex
	dir       *dirNode // the folder it is in; nil once unlinked
	name      string
	e         dirs.Entry // its published form, mode and mtime
	starts    []int64    // each chunk's offset, and the end
	lastChunk int        // the chunk the last read started in: reads near after it are sequential

	stage     *stage // being written: the content is here (and at e.Ref once upGen is gen)
	gen       uint64 // bumps with each change to the staged content
	upGen     uint64 // the gen e.Ref holds (uploaded)
	opens     int    // open file descriptions: the stage stays while any is open
	uploading chan struct{}
	upErr     error
}

var (
	_ = (fs.NodeOpener)((*fileNode)(nil))
	_ = (fs.NodeReader)((*fileNode)(nil))
	_ = (fs.NodeWriter)((*fileNode)(nil))
	_ = (fs.NodeFlusher)((*fileNode)(nil))
	_ = (fs.NodeFsyncer)((*fileNode)(nil))
	_ = (fs.NodeReleaser)((*fileNode)(nil))
	_ = (fs.NodeAllocater)((*fileNode)(nil))
	_ = (fs.NodeGetattrer)((*fileNode)(nil))
	_ = (fs.NodeSetattrer)((*fileNode)(nil))
)

// entry is the file's listing now, under name.
func (f *fileNode) entry(name string) dirs.Entry {
	f.mu.Lock()
	defer f.mu.Unlock()
	e := f.e
	e.Name, e.Kind = name, "file"
	if f.stagedLocked() {
		e.Size, e.Ref, e.Data = uint64(f.stage.size), "", nil
	}
	return e
}

// stagedLocked reports whether the file has content not yet uploaded.
func (f *fileNode) stagedLocked() bool { return f.stage != nil && f.upGen != f.gen }

func (f *fileNode) Getattr(ctx context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	f.mu.Lock()
	name, unlinked := f.name, f.dir == nil
	f.mu.Unlock()
	f.m.fill(f.entry(name), &out.Attr)
	if unlinked {
		out.Nlink = 0
	}
	out.SetTimeout(f.m.o.EntryTimeout)
	return 0
}

// Allocate grows the file (fallocate); with FALLOC_FL_KEEP_SIZE it does
// nothing: space is not reserved ahead in umbra.
func (f *fileNode) Allocate(ctx context.Context, _ fs.FileHandle, off, size uint64, mode uint32) syscall.Errno {
	if mode&^uint32(unix.FALLOC_FL_KEEP_SIZE) != 0 {
		return syscall.EOPNOTSUPP
	}
	if mode&unix.FALLOC_FL_KEEP_SIZE != 0 {
		return 0
	}
	if err := f.toStage(ctx, false); err != 0 {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if end := int64(off + size); end > f.stage.size {
		f.gen++
		return errno(f.stage.Truncate(end), f.m.log)
	}
	return 0
}

const writeFlags = syscall.O_WRONLY | syscall.O_RDWR | syscall.O_TRUNC | syscall.O_APPEND

// Open: a published file never changes, so the kernel keeps its pages; one
// opened for writing is staged.
func (f *fileNode) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if flags&writeFlags != 0 {
		if err := f.toStage(ctx, flags&syscall.O_TRUNC != 0); err != 0 {
			return nil, 0, err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.opens++
	if f.stage != nil {
		return nil, 0, 0
	}
	return nil, fuse.FOPEN_KEEP_CACHE, 0
}

// Release (the last close of an open file description) uploads what was
// written, and lets the stage go once uploaded and closed everywhere.
func (f *fileNode) Release(ctx context.Context, _ fs.FileHandle) syscall.Errno {
	f.mu.Lock()
	f.opens--
	if f.opens <= 0 && f.stage != nil && !f.stagedLocked() && f.uploading == nil {
		f.stage.Close()
		f.stage, f.starts = nil, nil
	}
	f.mu.Unlock()
	f.startUpload()
	return 0
}

// toStage makes the file one being written (its content copied into a
// stage, unless trunc), and puts it among its folder's changes.
func (f *fileNode) toStage(ctx context.Context, trunc bool) syscall.Errno {
	f.mu.Lock()
	d := f.dir
	if d == nil || !d.writable {
		f.mu.Unlock()
		return syscall.EROFS
	}
	if f.stage != nil {
		var err error
		if trunc {
			f.gen++
			err = f.stage.Truncate(0)
		}
		f.mu.Unlock()
		f.pendHere() // lock order: a folder before its files
		return errno(err, f.m.log)
	}
	e := f.e
	f.mu.Unlock()
	st := newStage(f.m.stageDir)
	if !trunc {
		if err := copyInto(ctx, f.m.store, e, st); err != nil {
			st.Close()
			return errno(err, f.m.log)
		}
	}
	f.mu.Lock()
	if f.stage != nil { // another opener won
		f.mu.Unlock()
		st.Close()
		return 0
	}
	f.stage, f.starts = st, nil
	f.gen++
	f.mu.Unlock()
	f.pendHere()
	return 0
}

// copyInto copies a published file's content into st.
func copyInto(ctx context.Context, s Store, e dirs.Entry, st *stage) error {
	if e.Ref == "" {
		return st.WriteAt(e.Data, 0)
	}
	return s.GetRange(ctx, e.Ref, 0, -1, &stageWriter{st: st})
}

type stageWriter struct {
	st  *stage
	off int64
}

func (w *stageWriter) Write(p []byte) (int, error) {
	if err := w.st.WriteAt(p, w.off); err != nil {
		return 0, err
	}
	w.off += int64(len(p))
	return len(p), nil
}

func (f *fileNode) Write(ctx context.Context, _ fs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stage == nil {
		return 0, syscall.EBADF
	}
	if err := f.stage.WriteAt(data, off); err != nil {
		return 0, errno(err, f.m.log)
	}
	f.gen++
	f.e.MTime = time.Now().UnixNano()
	return uint32(len(data)), 0
}

// Flush (each close) starts the upload of what was written.
func (f *fileNode) Flush(ctx context.Context, _ fs.FileHandle) syscall.Errno {
	f.startUpload()
	return 0
}

// Fsync uploads the file and publishes its folder before it returns.
func (f *fileNode) Fsync(ctx context.Context, _ fs.FileHandle, _ uint32) syscall.Errno {
	if err := f.waitUpload(ctx); err != nil {
		return errno(err, f.m.log)
	}
	f.mu.Lock()
	d := f.dir
	f.mu.Unlock()
	if d != nil {
		return errno(d.flush(ctx, true), f.m.log)
	}
	return 0
}

func (f *fileNode) Setattr(ctx context.Context, _ fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if size, ok := in.GetSize(); ok {
		if err := f.toStage(ctx, size == 0); err != 0 {
			return err
		}
		f.mu.Lock()
		err := f.stage.Truncate(int64(size))
		f.gen++
		f.mu.Unlock()
		if err != nil {
			return errno(err, f.m.log)
		}
	}
	mode, modeOK := in.GetMode()
	mtime, mtimeOK := in.GetMTime()
	if modeOK || mtimeOK {
		f.mu.Lock()
		d, name, staged := f.dir, f.name, f.stagedLocked()
		if d == nil || !d.writable {
			f.mu.Unlock()
			return syscall.EROFS
		}
		if modeOK {
			f.e.Mode = mode & 0o7777
		}
		if mtimeOK {
			f.e.MTime = mtime.UnixNano()
		}
		e := f.e
		f.mu.Unlock()
		// Always a change of its own: the file's last one may be
		// published already.
		if staged {
			d.setPend(name, &pend{file: f})
		} else {
			e.Name, e.Kind = name, "file"
			d.setPend(name, &pend{entry: e})
		}
	}
	return f.Getattr(ctx, nil, out)
}

// chunks returns the chunks' offsets, read once.
func (f *fileNode) chunks(ctx context.Context, ref string) ([]int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.starts != nil {
		return f.starts, nil
	}
	sizes, err := f.m.store.Chunks(ctx, ref)
	if err != nil {
		return nil, err
	}
	starts := make([]int64, len(sizes)+1)
	for i, s := range sizes {
		starts[i+1] = starts[i] + int64(s)
	}
	f.starts = starts
	return starts, nil
}

// chunk returns chunk i of ref, from the cache or fetched.
func (f *fileNode) chunk(ctx context.Context, ref string, starts []int64, i int) ([]byte, error) {
	return f.m.cache.get(ctx, chunkKey{ref, i}, func(ctx context.Context) ([]byte, error) {
		n := starts[i+1] - starts[i]
		buf := bytes.NewBuffer(make([]byte, 0, n))
		if err := f.m.store.GetRange(ctx, ref, starts[i], n, buf); err != nil {
			return nil, err
		}
		if int64(buf.Len()) != n {
			return nil, syscall.EIO
		}
		return buf.Bytes(), nil
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
	if want <= starts[i+1] { // within one chunk: its bytes, not a copy
		data, err := f.chunk(ctx, e.Ref, starts, i)
		if err != nil {
			return nil, errno(err, f.m.log)
		}
		return readResult(data[off-starts[i] : want-starts[i]]), 0
	}
	var vec [][]byte // the chunks' bytes, written to the kernel as they are
	for pos := off; pos < want; i++ {
		data, err := f.chunk(ctx, e.Ref, starts, i)
		if err != nil {
			return nil, errno(err, f.m.log)
		}
		vec = append(vec, data[pos-starts[i]:min(want, starts[i+1])-starts[i]])
		pos = starts[i+1]
	}
	return fuse.ReadResultVector(vec), 0
}

// readResult answers a read with b, written to the kernel as it is (a
// plain ReadResultData would first be tried for a splice it cannot do).
func readResult(b []byte) fuse.ReadResult { return fuse.ReadResultVector([][]byte{b}) }

// groupChunks is how many chunks one read-ahead fetch asks for: one
// request, the daemon's pipeline working on them together.
const groupChunks = 8

// readAhead fetches the chunks from i on, ReadAhead of them, in the
// background, groupChunks per request (at most ReadAhead/groupChunks
// requests at once for the whole mount).
func (f *fileNode) readAhead(ref string, starts []int64, i int) {
	end := min(i+f.m.o.ReadAhead, len(starts)-1)
	for j := i; j < end; {
		var ks []chunkKey
		for g := j; g < min(j+groupChunks, end); g++ {
			ks = append(ks, chunkKey{ref, g})
		}
		select {
		case f.m.ahead <- struct{}{}:
		default:
			return // enough in flight
		}
		calls := f.m.cache.claim(ks)
		if len(calls) == 0 {
			<-f.m.ahead
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
	w := &splitter{starts: starts, i: first, cur: make([]byte, 0, starts[first+1]-starts[first])}
	w.done = func(i int, data []byte) { f.m.cache.finish(chunkKey{ref, i}, calls[i-first], data, nil) }
	err := f.m.store.GetRange(f.m.bg, ref, starts[first], starts[last]-starts[first], w)
	if err == nil && w.i != last {
		err = syscall.EIO
	}
	for i := w.i; i < last; i++ {
		f.m.cache.finish(chunkKey{ref, i}, calls[i-first], nil, err)
	}
}

// splitter cuts a ranged read into chunks.
type splitter struct {
	starts []int64
	i      int
	cur    []byte
	done   func(i int, data []byte)
}

// ReadFrom reads r straight into the chunks' buffers (io.Copy's own buffer
// would be one more copy of every byte).
func (s *splitter) ReadFrom(r io.Reader) (int64, error) {
	var total int64
	for {
		if s.i+1 >= len(s.starts) {
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
		n, err := r.Read(s.cur[len(s.cur):size])
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

// next hands the completed chunk on and starts the next one.
func (s *splitter) next() {
	s.done(s.i, s.cur)
	s.i++
	if s.i+1 < len(s.starts) {
		s.cur = make([]byte, 0, s.starts[s.i+1]-s.starts[s.i])
	}
}

func (s *splitter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if s.i+1 >= len(s.starts) {
			return n - len(p), io.ErrShortWrite
		}
		size := int(s.starts[s.i+1] - s.starts[s.i])
		take := min(len(p), size-len(s.cur))
		s.cur = append(s.cur, p[:take]...)
		p = p[take:]
		if len(s.cur) == size {
			s.next()
		}
	}
	return n, nil
}

// setPlace records the folder and name the file is under (nil: unlinked).
func (f *fileNode) setPlace(d *dirNode, name string) {
	f.mu.Lock()
	f.dir, f.name = d, name
	f.mu.Unlock()
}
