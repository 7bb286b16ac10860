package fuse

import (
	"context"
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
	starts    []int64    // each chunk's offset, and the end, of startsRef
	startsRef string
	lastChunk int     // the chunk the last read started in: reads near after it are sequential
	readAt    []int64 // when each chunk of startsRef was last read whole (unix ns; 0: not)

	stage     *stage // being written: the content is here (and at e.Ref once upGen is gen)
	gen       uint64 // bumps with each change to the staged content
	upGen     uint64 // the gen e.Ref holds (uploaded)
	opens     int    // open file descriptions: the stage stays while any is open
	uploading chan struct{}
	upErr     error
	held      int64 // bytes of its in-memory stage counted in the mount's backlog (closed)
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
	return f.changeStage(ctx, false, func(st *stage) error {
		if end := int64(off + size); end > st.size {
			return st.Truncate(end)
		}
		return nil
	})
}

// changeStage applies change to the file's stage (made first, its
// content copied unless trunc), under the file's lock, and records the
// file as changed. A file not open anywhere is uploaded at once.
func (f *fileNode) changeStage(ctx context.Context, trunc bool, change func(*stage) error) syscall.Errno {
	for {
		if err := f.toStage(ctx, trunc); err != 0 {
			return err
		}
		f.mu.Lock()
		if f.stage == nil { // let go meanwhile (closed and uploaded): again
			f.mu.Unlock()
			continue
		}
		err := change(f.stage)
		f.gen++
		open := f.opens > 0
		f.mu.Unlock()
		f.pendHere()
		if !open {
			f.startUpload()
		}
		return errno(err, f.m.log)
	}
}

const writeFlags = syscall.O_WRONLY | syscall.O_RDWR | syscall.O_TRUNC | syscall.O_APPEND

// Open: a published file never changes, so the kernel keeps its pages; one
// opened for writing is staged.
func (f *fileNode) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	write := flags&writeFlags != 0
	for {
		if write {
			if err := f.toStage(ctx, flags&syscall.O_TRUNC != 0); err != 0 {
				return nil, 0, err
			}
		}
		f.mu.Lock()
		if write && f.stage == nil {
			// Let go meanwhile (an upload ended on a closed file): again.
			// Counted open, the stage stays.
			f.mu.Unlock()
			continue
		}
		f.opens++
		f.unholdLocked() // open again: its memory is an open file's
		staged := f.stage != nil
		f.mu.Unlock()
		if staged {
			return &handle{write: write}, 0, 0
		}
		return &handle{write: write}, fuse.FOPEN_KEEP_CACHE, 0
	}
}

// Release (the last close of an open file description) uploads what was
// written, and lets the stage go once uploaded and closed everywhere.
func (f *fileNode) Release(ctx context.Context, _ fs.FileHandle) syscall.Errno {
	f.mu.Lock()
	f.opens--
	if f.opens <= 0 && f.stage != nil && !f.stagedLocked() && f.uploading == nil {
		f.stage.Close()
		f.stage, f.starts = nil, nil
		f.unholdLocked()
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
	// An unlinked file (nil folder) still open keeps its stage: it can be
	// written and truncated, never published.
	if d != nil && !d.writable || d == nil && f.stage == nil {
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
	if f.stage == nil {
		f.mu.Unlock()
		return 0, syscall.EBADF
	}
	if err := f.stage.WriteAt(data, off); err != nil {
		f.mu.Unlock()
		return 0, errno(err, f.m.log)
	}
	// The first change since its last upload (a file written on after a
	// publish, still open) is a change of its folder again.
	first := f.upGen == f.gen
	f.gen++
	f.e.MTime = time.Now().UnixNano()
	f.mu.Unlock()
	if first {
		f.pendHere() // after the unlock: a folder's lock comes before its files'
	}
	return uint32(len(data)), 0
}

// handle is an open file description: whether it was opened for writing.
type handle struct{ write bool }

// Flush (each close of a description opened for writing) starts the
// upload of what was written, counts the file's stage in the mount's
// backlog if it is in memory, and waits while the closed files held in
// memory for their uploads pass maxBacklog. A close of a description
// opened for reading does neither (another process may be writing the
// file).
func (f *fileNode) Flush(ctx context.Context, fh fs.FileHandle) syscall.Errno {
	if h, ok := fh.(*handle); ok && !h.write {
		return 0
	}
	f.startUpload()
	if f.holdClosed() && f.m.backlog.wait(ctx) != nil {
		return syscall.EINTR
	}
	return 0
}

// holdClosed counts the file's in-memory stage in the mount's backlog
// until its upload ends, and reports whether it did.
func (f *fileNode) holdClosed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stage == nil || f.stage.size > stageMem || !f.stagedLocked() && f.uploading == nil {
		return false
	}
	f.unholdLocked()
	f.held = f.stage.size
	f.m.backlog.add(f.held)
	return true
}

// unholdLocked takes the file's stage out of the backlog (dropped, or open
// again). Called with f.mu held.
func (f *fileNode) unholdLocked() {
	if f.held != 0 {
		f.m.backlog.done(f.held)
		f.held = 0
	}
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
		// This file's change, and whatever else is ready: the uploads of
		// other files (one may be written all the while) are not waited
		// for (an fsync of the folder waits for them).
		return errno(d.flush(ctx, false), f.m.log)
	}
	return 0
}

func (f *fileNode) Setattr(ctx context.Context, _ fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if size, ok := in.GetSize(); ok {
		err := f.changeStage(ctx, size == 0, func(st *stage) error { return st.Truncate(int64(size)) })
		if err != 0 {
			return err
		}
	}
	mode, modeOK := in.GetMode()
	mtime, mtimeOK := in.GetMTime()
	if modeOK || mtimeOK {
		f.mu.Lock()
		d, name, staged := f.dir, f.name, f.stagedLocked()
		if d != nil && !d.writable || d == nil && f.stage == nil {
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
		if d == nil { // unlinked: nothing to publish
			return f.Getattr(ctx, nil, out)
		}
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

// setPlace records the folder and name the file is under (nil: unlinked).
func (f *fileNode) setPlace(d *dirNode, name string) {
	f.mu.Lock()
	f.dir, f.name = d, name
	f.mu.Unlock()
}
