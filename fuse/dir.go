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
	m        *mount
	ref      string
	writable bool       // ref is the folder's write capability
	attr     dirs.Entry // mode and mtime, from the parent's listing

	// pubMu makes publishes of the folder one at a time: an older Apply
	// finishing last would undo a newer one.
	pubMu sync.Mutex

	mu      sync.Mutex
	listed  time.Time
	entries []dirs.Entry     // as published, by name; replaced, never changed in place
	pubs    uint64           // publishes done here: a listing fetched across one is stale
	pend    map[string]*pend // changes made here, not yet published
	tick    uint64
}

// pend is a change to one name of a folder, not yet published.
type pend struct {
	removed bool
	rmdir   bool       // removed by rmdir: only if still an empty folder
	child   *dirNode   // rmdir's folder: its own removals are published first
	entry   dirs.Entry // an entry to set (a file by Ref or Data, a folder by Ref)
	file    *fileNode  // a file written here: its entry once uploaded
	tick    uint64     // the change's number: a publish clears only what it carried
}

var (
	_ = (fs.NodeLookuper)((*dirNode)(nil))
	_ = (fs.NodeReaddirer)((*dirNode)(nil))
	_ = (fs.NodeGetattrer)((*dirNode)(nil))
)

// list returns the folder's entries with the changes made here on top;
// the published listing is taken afresh after ListTTL.
func (d *dirNode) list(ctx context.Context) ([]dirs.Entry, error) {
	if err := d.refresh(ctx); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.pend) == 0 {
		return d.entries, nil
	}
	out := make([]dirs.Entry, 0, len(d.entries)+len(d.pend))
	for _, e := range d.entries {
		if _, changed := d.pend[e.Name]; !changed {
			out = append(out, e)
		}
	}
	for name, p := range d.pend {
		switch {
		case p.removed:
		case p.file != nil:
			out = append(out, p.file.entry(name))
		default:
			out = append(out, p.entry)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// refresh takes the published listing afresh if ListTTL has passed.
func (d *dirNode) refresh(ctx context.Context) error {
	d.mu.Lock()
	stale := d.entries == nil || time.Since(d.listed) >= d.m.o.ListTTL
	pubs := d.pubs
	d.mu.Unlock()
	if !stale {
		return nil
	}
	es, err := d.m.store.ListRefs(ctx, d.ref)
	if err != nil {
		return err
	}
	sort.Slice(es, func(i, j int) bool { return es[i].Name < es[j].Name })
	d.mu.Lock()
	if d.pubs == pubs || d.entries == nil { // else a publish here is newer than what was fetched
		d.entries, d.listed = es, time.Now()
	}
	d.mu.Unlock()
	return nil
}

// lookup returns the named entry as list has it, without making the whole
// list (a cp -r into a folder looks up every name it creates).
func (d *dirNode) lookup(ctx context.Context, name string) (dirs.Entry, bool, error) {
	if err := d.refresh(ctx); err != nil {
		return dirs.Entry{}, false, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if p, ok := d.pend[name]; ok {
		switch {
		case p.removed:
			return dirs.Entry{}, false, nil
		case p.file != nil:
			return p.file.entry(name), true, nil
		default:
			return p.entry, true, nil
		}
	}
	e, ok := find(d.entries, name)
	return e, ok, nil
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
	d.mu.Lock()
	if p, ok := d.pend[name]; ok && p.file != nil {
		fn := p.file
		d.mu.Unlock()
		d.m.fill(fn.entry(name), &out.Attr)
		return fn.EmbeddedInode(), 0
	}
	d.mu.Unlock()
	e, ok, err := d.lookup(ctx, name)
	if err != nil {
		return nil, errno(err, d.m.log)
	}
	if !ok {
		return nil, syscall.ENOENT
	}
	if ch := d.GetChild(name); ch != nil && sameNode(ch, e) {
		d.m.fill(e, &out.Attr)
		return ch, 0
	}
	node, mode := d.m.node(d, e)
	d.m.fill(e, &out.Attr)
	out.SetEntryTimeout(d.m.o.EntryTimeout)
	out.SetAttrTimeout(d.m.o.EntryTimeout)
	return d.NewInode(ctx, node, fs.StableAttr{Mode: mode, Ino: ino(d.ref, e)}), 0
}

// sameNode reports whether the inode ch already stands for entry e. A
// file node with a stage (open, or its upload not done) stands for its
// name whatever was published: its bytes are this mount's newest (a second
// node would split one file's writes between two stages).
func sameNode(ch *fs.Inode, e dirs.Entry) bool {
	switch n := ch.Operations().(type) {
	case *dirNode:
		return e.Kind == "folder" && n.ref == e.Ref
	case *fileNode:
		n.mu.Lock()
		defer n.mu.Unlock()
		return e.Kind == "file" && (n.stage != nil || n.e.Ref == e.Ref && string(n.e.Data) == string(e.Data))
	}
	return false
}

func (d *dirNode) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	es, err := d.list(ctx)
	if err != nil {
		return nil, errno(err, d.m.log)
	}
	out := make([]fuse.DirEntry, len(es))
	for i, e := range es {
		mode := uint32(fuse.S_IFREG)
		if e.Kind == "folder" {
			mode = fuse.S_IFDIR
		}
		out[i] = fuse.DirEntry{Name: e.Name, Mode: mode, Ino: ino(d.ref, e)}
	}
	return fs.NewListDirStream(out), 0
}

func (d *dirNode) Getattr(ctx context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	d.mu.Lock()
	a := d.attr
	d.mu.Unlock()
	d.m.fill(a, &out.Attr)
	out.SetTimeout(d.m.o.EntryTimeout)
	return 0
}
