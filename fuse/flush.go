package fuse

import (
	"context"
	"errors"
	"io"
	"sort"
	"time"

	"github.com/umbra-store/umbra/internal/dirs"
	"github.com/umbra-store/umbra/internal/format"
)

// Writes reach umbra in two steps. A file written here is uploaded (a file
// of its own, or inline when small) once it is closed, in the background,
// uploadWorkers at once. Its folder is then published with every change
// made to it since the last publish, one Apply: at most every
// FlushInterval, at fsync, and at unmount. A crash of the mount loses what
// was not yet published; published folders are never lost.

// lockedReader reads a file's stage under the file's lock.
type lockedReader struct{ f *fileNode }

func (r lockedReader) ReadAt(p []byte, off int64) (int, error) {
	r.f.mu.Lock()
	defer r.f.mu.Unlock()
	if r.f.stage == nil {
		return 0, io.ErrUnexpectedEOF
	}
	return r.f.stage.ReadAt(p, off)
}

// startUpload uploads the staged content in the background, unless an
// upload of it is in flight already.
func (f *fileNode) startUpload() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.stagedLocked() || f.uploading != nil {
		return
	}
	ch := make(chan struct{})
	f.uploading = ch
	go f.upload(ch, f.gen, f.stage.size)
}

func (f *fileNode) upload(done chan struct{}, gen uint64, size int64) {
	m := f.m
	ref, data, err := "", []byte(nil), error(nil)
	switch {
	case size <= format.MaxInline:
		data = make([]byte, size)
		_, err = lockedReader{f}.ReadAt(data, 0)
		if errors.Is(err, io.EOF) {
			err = nil
		}
	case size <= BatchFile:
		ref, err = m.putSmall(m.bg, io.NewSectionReader(lockedReader{f}, 0, size))
	default:
		m.uploads <- struct{}{}
		// Tried twice: a peer that fails a durability point fails the
		// put, and the next one places around it.
		for try := 0; try < 2 && m.bg.Err() == nil; try++ {
			if ref, _, err = m.w.PutData(m.bg, io.NewSectionReader(lockedReader{f}, 0, size)); err == nil {
				break
			}
		}
		<-m.uploads
	}
	f.mu.Lock()
	f.uploading = nil
	// Uploaded (or failed: a store that fails must not hold closes for
	// ever): no longer in the backlog, though still in memory while open.
	f.unholdLocked()
	again := false
	switch {
	case err != nil:
		f.upErr = err
		m.log.Warn("fuse: upload failed", "err", err)
	case f.gen != gen || f.stage == nil || f.stage.size != size:
		// Written meanwhile: the next close uploads it, or now if closed.
		again = f.stage != nil && f.opens <= 0
	default:
		f.upErr = nil
		f.e.Ref, f.e.Data, f.e.Size, f.upGen = ref, data, uint64(size), gen
		f.starts = nil
		if f.opens <= 0 {
			f.stage.Close()
			f.stage = nil
		}
	}
	f.mu.Unlock()
	close(done)
	if again {
		f.startUpload()
	}
	if err == nil {
		// A change of its own: the file's last one may be published
		// already (a file written again while it stayed open).
		f.pendHere()
	}
}

// pendHere records the file as a change of the folder it is in now, under
// its name now: checked with the folder locked, so that a rename running
// at the same time cannot leave it under its old name.
func (f *fileNode) pendHere() {
	for {
		f.mu.Lock()
		d := f.dir
		f.mu.Unlock()
		if d == nil {
			return
		}
		d.mu.Lock()
		f.mu.Lock()
		same, name := f.dir == d, f.name
		f.mu.Unlock()
		if !same {
			d.mu.Unlock()
			continue
		}
		if d.pend == nil {
			d.pend = map[string]*pend{}
		}
		d.tick++
		d.pend[name] = &pend{file: f, tick: d.tick}
		d.mu.Unlock()
		d.m.markDirty(d)
		return
	}
}

// waitUpload uploads what was written and waits for it.
func (f *fileNode) waitUpload(ctx context.Context) error {
	for {
		f.startUpload()
		f.mu.Lock()
		ch, staged, err := f.uploading, f.stagedLocked(), f.upErr
		f.mu.Unlock()
		if !staged {
			return nil
		}
		if ch == nil {
			if err != nil {
				return err
			}
			continue
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		f.mu.Lock()
		err = f.upErr
		f.mu.Unlock()
		if err != nil {
			return err
		}
	}
}

// setPend records a change to name, to be published.
func (d *dirNode) setPend(name string, p *pend) {
	d.mu.Lock()
	if d.pend == nil {
		d.pend = map[string]*pend{}
	}
	d.tick++
	p.tick = d.tick
	d.pend[name] = p
	d.mu.Unlock()
	d.m.markDirty(d)
}

func setOp(e dirs.Entry) dirs.Op {
	return dirs.Op{Kind: "set", Name: e.Name, Ref: e.Ref, Data: e.Data, Size: e.Size, Mode: e.Mode, MTime: e.MTime}
}

// flush publishes the folder's changes. A file still being written or
// uploaded waits for the next flush, unless wait, when flush first waits
// for the uploads of the files written before it was called. Publishes of
// one folder run one at a time.
func (d *dirNode) flush(ctx context.Context, wait bool) error {
	return d.flushThen(ctx, wait, nil)
}

// flushThen is flush, calling then (if set) before the next publish of
// the folder can start, with the changes it published (none if err).
func (d *dirNode) flushThen(ctx context.Context, wait bool, then func(published []took, err error)) (err error) {
	if wait {
		for _, f := range d.stagedFiles() {
			if err := f.waitUpload(ctx); err != nil {
				return err
			}
		}
	}
	d.flushRemovedChildren(ctx)
	d.pubMu.Lock()
	defer d.pubMu.Unlock()
	var taken []took
	if then != nil {
		defer func() {
			if err != nil {
				taken = nil
			}
			then(taken, err)
		}()
	}
	ops, taken, err := d.takeOps()
	if err != nil || len(ops) == 0 {
		return err
	}
	if _, err := d.m.w.Apply(ctx, d.ref, ops); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, t := range taken {
		if p := d.pend[t.name]; p != nil && p.tick == t.tick {
			delete(d.pend, t.name)
		}
	}
	es := d.entries // the published listing, as it now is (a new slice: readers may hold the old)
	for _, op := range ops {
		switch op.Kind {
		case "remove", "rmdir": // an rmdir kept by the store shows again at the next listing
			es = without(es, op.Name)
		case "set":
			e := dirs.Entry{Name: op.Name, Kind: "file", Ref: op.Ref, Data: op.Data, Size: op.Size, Mode: op.Mode, MTime: op.MTime}
			if isFolderRef(op.Ref) {
				e.Kind, e.Size = "folder", 0
			}
			es = insert(es, e)
		}
	}
	d.entries = es
	d.pubs++
	return nil
}

// took is a change taken for a publish: cleared after it only if not
// changed again meanwhile.
type took struct {
	name string
	tick uint64
}

// stagedFiles returns the folder's files with content not yet uploaded.
func (d *dirNode) stagedFiles() []*fileNode {
	d.mu.Lock()
	defer d.mu.Unlock()
	var fs []*fileNode
	for _, p := range d.pend {
		if p.file != nil && p.file.staged() {
			fs = append(fs, p.file)
		}
	}
	return fs
}

// flushRemovedChildren publishes the changes made here in the folders
// this one's pending rmdirs remove (an rm -r empties a folder, then
// removes it): the store must see them empty when the rmdir is published.
// Not under d.pubMu: a folder's publish never waits for another's.
func (d *dirNode) flushRemovedChildren(ctx context.Context) {
	d.mu.Lock()
	var children []*dirNode
	for _, p := range d.pend {
		if p.rmdir && p.child != nil {
			children = append(children, p.child)
		}
	}
	d.mu.Unlock()
	for _, c := range children {
		if err := c.flush(ctx, false); err != nil {
			d.m.log.Warn("fuse: publish a removed folder's changes", "err", err)
		}
	}
}

// removeOp is the op of removal p of name: a folder removed by rmdir goes
// only if it is still empty when published (another writer may have put
// something into it since rmdir looked).
func removeOp(name string, p *pend) dirs.Op {
	if p.rmdir {
		return dirs.Op{Kind: "rmdir", Name: name}
	}
	return dirs.Op{Kind: "remove", Name: name}
}

// takeOps returns the folder's changes as ops, sorted by name, leaving out
// files still staged (their uploads are started again if closed: an upload
// that failed is retried each flush).
func (d *dirNode) takeOps() ([]dirs.Op, []took, error) {
	d.mu.Lock()
	var ops []dirs.Op
	var taken []took
	var retry []*fileNode
	for name, p := range d.pend {
		switch {
		case p.removed:
			ops = append(ops, removeOp(name, p))
		case p.file != nil:
			if p.file.staged() {
				retry = append(retry, p.file)
				continue
			}
			e := p.file.entry(name)
			if e.Ref == "" && e.Data == nil && e.Size > 0 {
				// Not staged, not stored: never so, but publishing it
				// would lose the file.
				d.mu.Unlock()
				return nil, nil, errors.New("fuse: a file has neither staged nor stored content")
			}
			ops = append(ops, setOp(e))
		default:
			ops = append(ops, setOp(p.entry))
		}
		taken = append(taken, took{name, p.tick})
	}
	d.mu.Unlock()
	for _, f := range retry {
		f.mu.Lock()
		closed := f.opens <= 0
		f.mu.Unlock()
		if closed {
			f.startUpload()
		}
	}
	sort.Slice(ops, func(i, j int) bool { return ops[i].Name < ops[j].Name })
	return ops, taken, nil
}

// staged reports whether the file has content not yet uploaded.
func (f *fileNode) staged() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stagedLocked()
}

func isFolderRef(ref string) bool {
	return len(ref) > 9 && (ref[:9] == "umbra:dw:" || ref[:9] == "umbra:dr:")
}

// markDirty puts d among the folders the flusher publishes.
func (m *mount) markDirty(d *dirNode) {
	m.mu.Lock()
	m.dirty[d] = true
	m.mu.Unlock()
}

// flusher publishes dirty folders every FlushInterval until the mount
// ends.
func (m *mount) flusher() {
	t := time.NewTicker(m.o.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-m.bg.Done():
			return
		case <-t.C:
		}
		m.flushAll(m.bg, false)
	}
}

// flushAll publishes every folder with changes; with wait, until none is
// left (uploads waited for). It returns the first error.
func (m *mount) flushAll(ctx context.Context, wait bool) error {
	for {
		m.mu.Lock()
		ds := make([]*dirNode, 0, len(m.dirty))
		for d := range m.dirty {
			ds = append(ds, d)
		}
		clear(m.dirty)
		m.mu.Unlock()
		if len(ds) == 0 {
			return nil
		}
		var first error
		for _, d := range ds {
			err := d.flush(ctx, wait)
			d.mu.Lock()
			left := len(d.pend) > 0
			d.mu.Unlock()
			if err != nil || left {
				m.markDirty(d)
			}
			if err != nil && first == nil {
				first = err
				m.log.Warn("fuse: publishing a folder failed", "kind", kindOf(err))
			}
		}
		if !wait || first != nil {
			return first
		}
	}
}
