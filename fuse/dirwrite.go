package fuse

import (
	"context"
	"sort"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/umbra-store/umbra/internal/dirs"
	"github.com/umbra-store/umbra/internal/format"
)

var (
	_ = (fs.NodeCreater)((*dirNode)(nil))
	_ = (fs.NodeMkdirer)((*dirNode)(nil))
	_ = (fs.NodeUnlinker)((*dirNode)(nil))
	_ = (fs.NodeRmdirer)((*dirNode)(nil))
	_ = (fs.NodeRenamer)((*dirNode)(nil))
	_ = (fs.NodeSetattrer)((*dirNode)(nil))
	_ = (fs.NodeFsyncer)((*dirNode)(nil))
	_ = (fs.NodeStatfser)((*dirNode)(nil))
)

// checkName checks a new name: writable folder, valid name.
func (d *dirNode) checkName(name string) syscall.Errno {
	if !d.writable {
		return syscall.EROFS
	}
	if len(name) > format.MaxNameLen {
		return syscall.ENAMETOOLONG
	}
	if format.CheckName(name) != nil {
		return syscall.EINVAL
	}
	return 0
}

func (d *dirNode) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	if e := d.checkName(name); e != 0 {
		return nil, nil, 0, e
	}
	e, ok, err := d.lookup(ctx, name)
	if err != nil {
		return nil, nil, 0, errno(err, d.m.log)
	}
	if ok && e.Kind == "folder" {
		return nil, nil, 0, syscall.EISDIR
	}
	if ok || d.pendingFile(name) {
		// There already (the kernel's negative entry was older than
		// another writer's file): O_CREAT opens it as it is.
		return d.createExisting(ctx, name, flags, out)
	}
	f := &fileNode{m: d.m, dir: d, name: name, stage: newStage(d.m.stageDir), gen: 1, opens: 1,
		e: dirs.Entry{Name: name, Kind: "file", Mode: mode & 0o7777, MTime: time.Now().UnixNano()}}
	d.setPend(name, &pend{file: f})
	d.m.fill(f.entry(name), &out.Attr)
	return d.NewInode(ctx, f, fs.StableAttr{Mode: fuse.S_IFREG}), &handle{write: true}, 0, 0
}

// pendingFile reports whether name is a file this mount is writing.
func (d *dirNode) pendingFile(name string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	p, ok := d.pend[name]
	return ok && p.file != nil
}

// createExisting is Create of a name a file holds: EEXIST with O_EXCL,
// else the file opened with flags (emptied with O_TRUNC only).
func (d *dirNode) createExisting(ctx context.Context, name string, flags uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	if flags&syscall.O_EXCL != 0 {
		return nil, nil, 0, syscall.EEXIST
	}
	ch, eno := d.Lookup(ctx, name, out)
	if eno != 0 {
		return nil, nil, 0, eno
	}
	f, isFile := ch.Operations().(*fileNode)
	if !isFile {
		return nil, nil, 0, syscall.EISDIR
	}
	fh, fl, eno := f.Open(ctx, flags)
	if eno != 0 {
		return nil, nil, 0, eno
	}
	return ch, fh, fl, 0
}

// Mkdir makes the folder at once (its parent is published with it): the
// new folder's capability is needed to write into it.
func (d *dirNode) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if e := d.checkName(name); e != 0 {
		return nil, e
	}
	if _, ok, err := d.lookup(ctx, name); err != nil {
		return nil, errno(err, d.m.log)
	} else if ok {
		return nil, syscall.EEXIST
	}
	mt := time.Now().UnixNano()
	d.pubMu.Lock()
	ops := []dirs.Op{{Kind: "mkdir", Name: name, Mode: mode & 0o7777, MTime: mt}}
	d.mu.Lock()
	gone := d.pend[name]
	d.mu.Unlock()
	if gone != nil && gone.removed {
		// The name's removal is pending (rmdir x; mkdir x): published
		// with the mkdir, before it, or the store still holds the name.
		ops = append([]dirs.Op{removeOp(name, gone)}, ops...)
	}
	// Not stopped by an interrupt (publishCtx): the folder may be made
	// already, and the caller's retry would fail with EEXIST.
	pctx, cancel := d.m.publishCtx(ctx)
	made, err := d.m.w.Apply(pctx, d.ref, ops)
	cancel()
	if err != nil {
		d.pubMu.Unlock()
		return nil, errno(err, d.m.log)
	}
	e := dirs.Entry{Name: name, Kind: "folder", Mode: mode & 0o7777, MTime: mt, Ref: made[name], Writable: true}
	d.mu.Lock()
	if gone != nil && d.pend[name] == gone {
		delete(d.pend, name) // published above
	}
	d.entries = insert(d.entries, e)
	d.pubs++
	d.mu.Unlock()
	d.pubMu.Unlock()
	node, m := d.m.node(d, e)
	d.m.fill(e, &out.Attr)
	return d.NewInode(ctx, node, fs.StableAttr{Mode: m, Ino: ino(d.ref, e)}), 0
}

// insert returns the sorted es with e put in, replacing one of the same
// name; es itself is left as it is (readers may hold it).
func insert(es []dirs.Entry, e dirs.Entry) []dirs.Entry {
	i := sort.Search(len(es), func(i int) bool { return es[i].Name >= e.Name })
	out := make([]dirs.Entry, 0, len(es)+1)
	out = append(append(out, es[:i]...), e)
	if i < len(es) && es[i].Name == e.Name {
		i++
	}
	return append(out, es[i:]...)
}

// without returns the sorted es without name, es itself left as it is.
func without(es []dirs.Entry, name string) []dirs.Entry {
	i := sort.Search(len(es), func(i int) bool { return es[i].Name >= name })
	if i == len(es) || es[i].Name != name {
		return es
	}
	return append(append(make([]dirs.Entry, 0, len(es)-1), es[:i]...), es[i+1:]...)
}

// entryOf returns name's entry and, if it is a file being written here,
// its node.
func (d *dirNode) entryOf(ctx context.Context, name string) (dirs.Entry, *fileNode, syscall.Errno) {
	e, ok, err := d.lookup(ctx, name)
	if err != nil {
		return dirs.Entry{}, nil, errno(err, d.m.log)
	}
	if !ok {
		return e, nil, syscall.ENOENT
	}
	d.mu.Lock()
	p := d.pend[name]
	d.mu.Unlock()
	if p != nil && p.file != nil {
		return e, p.file, 0
	}
	// A published file the kernel knows: its node must follow a rename.
	if ch := d.GetChild(name); ch != nil && e.Kind == "file" {
		if f, ok := ch.Operations().(*fileNode); ok {
			f.mu.Lock()
			same := f.e.Ref == e.Ref && string(f.e.Data) == string(e.Data)
			f.mu.Unlock()
			if same {
				return e, f, 0
			}
		}
	}
	return e, nil, 0
}

func (d *dirNode) Unlink(ctx context.Context, name string) syscall.Errno {
	if !d.writable {
		return syscall.EROFS
	}
	e, f, errno := d.entryOf(ctx, name)
	if errno != 0 {
		return errno
	}
	if e.Kind == "folder" {
		return syscall.EISDIR
	}
	if f != nil {
		f.setPlace(nil, "") // still open, perhaps: written on, never published
	} else if ch := d.GetChild(name); ch != nil {
		if fn, ok := ch.Operations().(*fileNode); ok {
			fn.setPlace(nil, "")
		}
	}
	d.setPend(name, &pend{removed: true})
	return 0
}

func (d *dirNode) Rmdir(ctx context.Context, name string) syscall.Errno {
	if !d.writable {
		return syscall.EROFS
	}
	e, _, errno := d.entryOf(ctx, name)
	if errno != 0 {
		return errno
	}
	if e.Kind != "folder" {
		return syscall.ENOTDIR
	}
	if empty, err := d.emptyFolder(ctx, name, e); err != 0 || !empty {
		if err != 0 {
			return err
		}
		return syscall.ENOTEMPTY
	}
	p := &pend{removed: true, rmdir: true}
	if ch := d.GetChild(name); ch != nil {
		p.child, _ = ch.Operations().(*dirNode)
	}
	d.setPend(name, p)
	return 0
}

// emptyFolder reports whether the folder entry e (named name here) is
// empty, its changes made here included.
func (d *dirNode) emptyFolder(ctx context.Context, name string, e dirs.Entry) (bool, syscall.Errno) {
	if ch := d.GetChild(name); ch != nil {
		if cd, ok := ch.Operations().(*dirNode); ok {
			es, err := cd.list(ctx)
			return len(es) == 0, errno(err, d.m.log)
		}
	}
	es, err := d.m.store.ListRefs(ctx, e.Ref)
	return len(es) == 0, errno(err, d.m.log)
}

// Rename moves name to newName in newParent. Across folders the entry is
// published in the new folder before it leaves the old one.
func (d *dirNode) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	nd, ok := newParent.(*dirNode)
	if !ok {
		return syscall.EXDEV
	}
	if !d.writable || !nd.writable {
		return syscall.EROFS
	}
	if flags&^uint32(unix.RENAME_NOREPLACE) != 0 {
		return syscall.EINVAL // RENAME_EXCHANGE, RENAME_WHITEOUT: not supported
	}
	if e := nd.checkName(newName); e != 0 {
		return e
	}
	src, f, e := d.entryOf(ctx, name)
	if e != 0 {
		return e
	}
	if dst, _, e := nd.entryOf(ctx, newName); e == 0 {
		switch {
		case flags&unix.RENAME_NOREPLACE != 0:
			return syscall.EEXIST
		case dst.Kind == "folder" && src.Kind != "folder":
			return syscall.EISDIR
		case dst.Kind != "folder" && src.Kind == "folder":
			return syscall.ENOTDIR
		case dst.Kind == "folder":
			empty, err := nd.emptyFolder(ctx, newName, dst)
			if err != 0 {
				return err
			}
			if !empty {
				return syscall.ENOTEMPTY
			}
		}
	}
	if src.Kind == "folder" && nd.within(src.Ref) {
		return syscall.EINVAL // into itself
	}
	if d == nd && name == newName {
		return 0
	}
	if d != nd && f != nil {
		// Across folders the destination is published at once, with the
		// file: its upload is waited for first, while an interrupt still
		// leaves everything as it was.
		if err := f.waitUpload(ctx); err != nil {
			return errno(err, d.m.log)
		}
	}
	mine, undo := d.renameHere(name, src, f, nd, newName)
	if d == nd {
		d.setPend(name, &pend{removed: true})
		return 0
	}
	return d.renameAcross(ctx, name, f, nd, newName, mine, undo)
}

// renameHere records the rename of name (entry src, file node f if the
// kernel knows it) to newName in nd: it returns the change pending in nd,
// and what undoes it.
func (d *dirNode) renameHere(name string, src dirs.Entry, f *fileNode, nd *dirNode, newName string) (mine *pend, undo func()) {
	var over *fileNode
	if ch := nd.GetChild(newName); ch != nil {
		if o, ok := ch.Operations().(*fileNode); ok && o != f {
			over = o
			over.setPlace(nil, "") // replaced: still open, perhaps, but nameless
		}
	}
	nd.mu.Lock()
	prev := nd.pend[newName]
	nd.mu.Unlock()
	p := &pend{file: f}
	if f != nil {
		f.setPlace(nd, newName)
	} else {
		src.Name = newName
		p = &pend{entry: src}
	}
	nd.setPend(newName, p)
	return p, func() {
		nd.mu.Lock()
		if nd.pend[newName] == p {
			if prev != nil {
				nd.pend[newName] = prev
			} else {
				delete(nd.pend, newName)
			}
		}
		nd.mu.Unlock()
		if f != nil {
			f.setPlace(d, name)
		}
		if over != nil {
			over.setPlace(nd, newName)
		}
	}
}

// renameAcross publishes a rename into another folder: the destination
// first, so that a crash between leaves the entry in both, never neither.
// Once begun it does not stop at an interrupt (publishCtx): stopped after
// the destination's publish, the caller's retry (os.Rename retries on
// EINTR) would find the destination taken and fail with ENOTEMPTY, the
// entry in both places. A destination that cannot be published undoes
// the rename; a source whose publish fails loses the name at the next
// publish, and the rename has happened.
func (d *dirNode) renameAcross(ctx context.Context, name string, f *fileNode, nd *dirNode, newName string, mine *pend, undo func()) syscall.Errno {
	pctx, cancel := d.m.publishCtx(ctx)
	defer cancel()
	// A file written again since its upload was waited for is waited for
	// again: published without it, the destination would not hold it.
	if f != nil && f.staged() {
		if err := f.waitUpload(pctx); err != nil {
			undo()
			return errno(err, d.m.log)
		}
	}
	// The undo runs before the folder's next publish could take the change.
	published := false
	err := nd.flushThen(pctx, false, func(taken []took, _ error) {
		for _, t := range taken {
			published = published || t.name == newName && t.tick == mine.tick
		}
		if !published {
			undo()
		}
	})
	if err != nil {
		return errno(err, d.m.log)
	}
	if !published {
		return syscall.EAGAIN // the file was written again and not uploaded yet
	}
	d.setPend(name, &pend{removed: true})
	if err := d.flush(pctx, false); err != nil {
		d.m.log.Warn("fuse: a rename's old name goes at the next publish", "kind", kindOf(err))
	}
	return 0
}

// within reports whether d is the folder ref or inside it.
func (d *dirNode) within(ref string) bool {
	for in := d.EmbeddedInode(); in != nil; {
		if dn, ok := in.Operations().(*dirNode); ok && dn.ref == ref {
			return true
		}
		_, in = in.Parent()
	}
	return false
}

// Setattr changes a folder's mode or mtime: its entry in its parent.
func (d *dirNode) Setattr(ctx context.Context, _ fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if !d.writable {
		return syscall.EROFS
	}
	d.mu.Lock()
	if mode, ok := in.GetMode(); ok {
		d.attr.Mode = mode & 0o7777
	}
	if mt, ok := in.GetMTime(); ok {
		d.attr.MTime = mt.UnixNano()
	}
	e := d.attr
	d.mu.Unlock()
	if name, parent := d.Parent(); parent != nil {
		if pd, ok := parent.Operations().(*dirNode); ok && pd.writable {
			e.Name, e.Kind, e.Ref = name, "folder", d.ref
			pd.setPend(name, &pend{entry: e})
		}
	}
	return d.Getattr(ctx, nil, out)
}

// Fsync publishes the folder.
func (d *dirNode) Fsync(ctx context.Context, _ fs.FileHandle, _ uint32) syscall.Errno {
	return errno(d.flush(ctx, true), d.m.log)
}

func (d *dirNode) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	out.Bsize, out.Frsize, out.NameLen = 1<<20, 1<<20, format.MaxNameLen
	out.Blocks, out.Bfree, out.Bavail = 1<<30, 1<<30, 1<<30
	out.Files, out.Ffree = 1<<30, 1<<30
	return 0
}
