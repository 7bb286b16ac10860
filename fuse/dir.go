package fuse

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/umbra-store/umbra/internal/dirs"
)

// dirNode is a folder of the mount.
type dirNode struct {
	fs.Inode
	m    *mount
	ref  string
	attr dirs.Entry // mode and mtime, from the parent's listing

	mu      sync.Mutex
	listed  time.Time
	entries []dirs.Entry // by name
}

var (
	_ = (fs.NodeLookuper)((*dirNode)(nil))
	_ = (fs.NodeReaddirer)((*dirNode)(nil))
	_ = (fs.NodeGetattrer)((*dirNode)(nil))
)

// list returns the folder's entries, listed afresh after ListTTL.
func (d *dirNode) list(ctx context.Context) ([]dirs.Entry, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.entries != nil && time.Since(d.listed) < d.m.o.ListTTL {
		return d.entries, nil
	}
	es, err := d.m.store.ListRefs(ctx, d.ref)
	if err != nil {
		return nil, err
	}
	sort.Slice(es, func(i, j int) bool { return es[i].Name < es[j].Name })
	d.entries, d.listed = es, time.Now()
	return es, nil
}

func find(es []dirs.Entry, name string) (dirs.Entry, bool) {
	i := sort.Search(len(es), func(i int) bool { return es[i].Name >= name })
	if i < len(es) && es[i].Name == name {
		return es[i], true
	}
	return dirs.Entry{}, false
}

// ino numbers an entry: by its folder, name and content, so that a file
// replaced under the same name is a new inode to the kernel.
func ino(folder string, e dirs.Entry) uint64 {
	h := sha256.New()
	for _, s := range []string{folder, e.Name, e.Ref} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	h.Write(e.Data)
	var sum [32]byte
	h.Sum(sum[:0])
	return binary.BigEndian.Uint64(sum[:8]) | 1<<63 // never 0 or 1 (the root)
}

func (d *dirNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	es, err := d.list(ctx)
	if err != nil {
		return nil, errno(err, d.m.log)
	}
	e, ok := find(es, name)
	if !ok {
		return nil, syscall.ENOENT
	}
	node, mode := d.m.node(e)
	d.m.fill(e, &out.Attr)
	out.SetEntryTimeout(d.m.o.EntryTimeout)
	out.SetAttrTimeout(d.m.o.EntryTimeout)
	return d.NewInode(ctx, node, fs.StableAttr{Mode: mode, Ino: ino(d.ref, e)}), 0
}

func (d *dirNode) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	es, err := d.list(ctx)
	if err != nil {
		return nil, errno(err, d.m.log)
	}
	out := make([]fuse.DirEntry, len(es))
	for i, e := range es {
		_, mode := d.m.node(e)
		out[i] = fuse.DirEntry{Name: e.Name, Mode: mode, Ino: ino(d.ref, e)}
	}
	return fs.NewListDirStream(out), 0
}

func (d *dirNode) Getattr(ctx context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	d.m.fill(d.attr, &out.Attr)
	out.SetTimeout(d.m.o.EntryTimeout)
	return 0
}
