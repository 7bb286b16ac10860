package fuse

import (
	"bytes"
	"context"
	"sort"
	"sync"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/umbra-store/umbra/internal/dirs"
)

// fileNode is a file of the mount. Its content never changes.
type fileNode struct {
	fs.Inode
	m *mount
	e dirs.Entry

	mu      sync.Mutex
	starts  []int64 // each chunk's offset, and the end
	lastEnd int64   // where the last read ended: the next at it is sequential
}

var (
	_ = (fs.NodeOpener)((*fileNode)(nil))
	_ = (fs.NodeReader)((*fileNode)(nil))
	_ = (fs.NodeGetattrer)((*fileNode)(nil))
)

func (f *fileNode) Getattr(ctx context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	f.m.fill(f.e, &out.Attr)
	out.SetTimeout(f.m.o.EntryTimeout)
	return 0
}

// Open: the content never changes, so the kernel keeps its pages.
func (f *fileNode) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if flags&(syscall.O_WRONLY|syscall.O_RDWR|syscall.O_TRUNC|syscall.O_APPEND) != 0 {
		return nil, 0, syscall.EROFS
	}
	return nil, fuse.FOPEN_KEEP_CACHE, 0
}

// chunks returns the chunks' offsets, read once.
func (f *fileNode) chunks(ctx context.Context) ([]int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.starts != nil {
		return f.starts, nil
	}
	sizes, err := f.m.store.Chunks(ctx, f.e.Ref)
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

// chunk returns chunk i, from the cache or fetched.
func (f *fileNode) chunk(ctx context.Context, starts []int64, i int) ([]byte, error) {
	return f.m.cache.get(ctx, chunkKey{f.e.Ref, i}, func(ctx context.Context) ([]byte, error) {
		n := starts[i+1] - starts[i]
		buf := bytes.NewBuffer(make([]byte, 0, n))
		if err := f.m.store.GetRange(ctx, f.e.Ref, starts[i], n, buf); err != nil {
			return nil, err
		}
		if int64(buf.Len()) != n {
			return nil, syscall.EIO
		}
		return buf.Bytes(), nil
	})
}

func (f *fileNode) Read(ctx context.Context, _ fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if f.e.Ref == "" { // inline
		if off >= int64(len(f.e.Data)) {
			return fuse.ReadResultData(nil), 0
		}
		return fuse.ReadResultData(f.e.Data[off:min(int64(len(f.e.Data)), off+int64(len(dest)))]), 0
	}
	starts, err := f.chunks(ctx)
	if err != nil {
		return nil, errno(err, f.m.log)
	}
	end := starts[len(starts)-1]
	if off >= end {
		return fuse.ReadResultData(nil), 0
	}
	want := min(end, off+int64(len(dest)))
	i := sort.Search(len(starts)-1, func(i int) bool { return starts[i+1] > off })
	f.mu.Lock()
	sequential := off == f.lastEnd
	f.lastEnd = want
	f.mu.Unlock()
	if sequential || off == 0 {
		f.readAhead(starts, i+1)
	}
	n := 0
	for pos := off; pos < want; i++ {
		data, err := f.chunk(ctx, starts, i)
		if err != nil {
			return nil, errno(err, f.m.log)
		}
		n += copy(dest[n:], data[pos-starts[i]:])
		pos = starts[i+1]
	}
	return fuse.ReadResultData(dest[:min(n, int(want-off))]), 0
}

// readAhead fetches the chunks from i on, ReadAhead of them, in the
// background (at most ReadAhead fetches at once for the whole mount).
func (f *fileNode) readAhead(starts []int64, i int) {
	for j := i; j < min(i+f.m.o.ReadAhead, len(starts)-1); j++ {
		if f.m.cache.has(chunkKey{f.e.Ref, j}) {
			continue
		}
		select {
		case f.m.ahead <- struct{}{}:
		default:
			return // enough in flight
		}
		go func() {
			defer func() { <-f.m.ahead }()
			_, _ = f.chunk(f.m.bg, starts, j)
		}()
	}
}
