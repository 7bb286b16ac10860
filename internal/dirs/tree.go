package dirs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"sort"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"github.com/umbra-store/umbra/internal/engine"
	"github.com/umbra-store/umbra/internal/format"
	"github.com/umbra-store/umbra/internal/kind"
	"github.com/umbra-store/umbra/keyring"
)

// Tree transfer parallelism.
const (
	treeWorkers   = 16 // files stored or fetched at once
	netPuts       = 4  // of which files of their own (each a put with its own durability point)
	bigPuts       = 2  // of which files over bigFile (each such put is parallel itself)
	bigFile       = 4 << 20
	folderWorkers = 16 // folders published or resolved at once
)

// Progress counts a tree transfer.
type Progress struct {
	Files int64 `json:"files"`
	Bytes int64 `json:"bytes"`
}

// TreeResult is what a tree transfer did.
type TreeResult struct {
	Files   int64    `json:"files"`
	Folders int64    `json:"folders"`
	Bytes   int64    `json:"bytes"`
	Skipped []string `json:"skipped,omitempty"` // symbolic links and special files, not stored
}

// localDir is a folder of the tree being put.
type localDir struct {
	rel     string // "." for the top
	name    string
	mode    uint32
	mtime   int64
	files   []*localFile
	dirs    []*localDir
	entries []format.DirEntry // filled as files are stored
	mu      sync.Mutex
}

type localFile struct {
	dir    *localDir
	rel    string
	name   string
	size   int64
	mode   uint32
	mtime  int64
	inline bool
}

// scan lists the tree under src.
func scan(src *os.Root) (*localDir, []*localFile, []string, error) {
	st, err := src.Stat(".")
	if err != nil {
		return nil, nil, nil, err
	}
	top := &localDir{rel: ".", mode: modeBits(st.Mode()), mtime: st.ModTime().UnixNano()}
	dirs := map[string]*localDir{".": top}
	var files []*localFile
	var skipped []string
	err = fs.WalkDir(src.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == "." {
			return nil
		}
		parent := dirs[path.Dir(p)]
		info, err := d.Info()
		if err != nil {
			return err
		}
		if err := format.CheckName(d.Name()); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		switch {
		case d.IsDir():
			ld := &localDir{rel: p, name: d.Name(), mode: modeBits(info.Mode()), mtime: info.ModTime().UnixNano()}
			parent.dirs = append(parent.dirs, ld)
			dirs[p] = ld
		case info.Mode().IsRegular():
			f := &localFile{dir: parent, rel: p, name: d.Name(), size: info.Size(), mode: modeBits(info.Mode()), mtime: info.ModTime().UnixNano()}
			parent.files = append(parent.files, f)
			files = append(files, f)
		default:
			skipped = append(skipped, p)
		}
		return nil
	})
	if err != nil {
		return nil, nil, nil, err
	}
	for _, d := range dirs {
		planInline(d)
	}
	return top, files, skipped, nil
}

// planInline marks the files of d stored inside its snapshot: the small
// ones, smallest first, within inlineBudget.
func planInline(d *localDir) {
	small := make([]*localFile, 0, len(d.files))
	for _, f := range d.files {
		if f.size <= format.MaxInline {
			small = append(small, f)
		}
	}
	sort.Slice(small, func(i, j int) bool { return small[i].size < small[j].size })
	budget := int64(inlineBudget)
	for _, f := range small {
		if budget < f.size {
			break
		}
		budget -= f.size
		f.inline = true
	}
}

// modeBits keeps what a snapshot keeps of a mode: permissions, setuid,
// setgid, sticky.
func modeBits(m fs.FileMode) uint32 {
	b := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		b |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		b |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		b |= 0o1000
	}
	return b
}

// fileMode is the mode a fetched file or folder gets: its permission
// bits less umask; never setuid, setgid or sticky.
func fileMode(b, umask uint32) fs.FileMode { return fs.FileMode(b & 0o777 &^ umask) }

// PutTree stores the tree under src at dest: a new folder there, or, if
// dest is a folder already, merged into it (files of the same name
// replaced, folders of the same name merged). Files are stored in
// parallel; each folder is published once, and the new tree appears at
// dest last, whole.
func (s *Service) PutTree(ctx context.Context, src *os.Root, dest string, o engine.PutOptions, progress func(Progress)) (TreeResult, error) {
	top, files, skipped, err := scan(src)
	if err != nil {
		return TreeResult{}, err
	}
	t, err := s.parse(dest)
	if err != nil {
		return TreeResult{}, err
	}
	into, err := s.walk(ctx, t)
	var parent *node
	var name string
	switch {
	case err == nil && !into.isDir():
		return TreeResult{}, fmt.Errorf("%w: %s is a file", ErrExists, prefix(t.text, t.names))
	case err == nil && into.write == nil:
		return TreeResult{}, ErrReadOnly
	case err == nil:
	case !isNotFound(err):
		return TreeResult{}, err
	default:
		into = nil
		if parent, name, err = s.walkParent(ctx, t); err != nil {
			return TreeResult{}, err
		}
		if parent.write == nil {
			return TreeResult{}, ErrReadOnly
		}
	}
	res := TreeResult{Skipped: skipped}
	if err := s.storeFiles(ctx, src, files, o, &res, progress); err != nil {
		return res, err
	}
	var w keyring.DirWriteCap
	if into != nil {
		w = *into.write
		err = s.mergeDir(ctx, top, w, o, &res)
	} else {
		w = keyring.GenerateDirWriteCap()
		err = s.newDir(ctx, top, w, &res)
	}
	if err != nil {
		return res, err
	}
	if into == nil {
		e := s.dirEntry(*parent.write, name, w, top.mode)
		e.MTime = top.mtime
		if err := s.setEntry(ctx, *parent.write, e, false); err != nil {
			return res, err
		}
	}
	return res, nil
}

// storeFiles stores every file, treeWorkers at once (bigPuts of them files
// of their own).
func (s *Service) storeFiles(ctx context.Context, src *os.Root, files []*localFile, o engine.PutOptions, res *TreeResult, progress func(Progress)) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(treeWorkers)
	big := make(chan struct{}, bigPuts)
	puts := make(chan struct{}, netPuts)
	var nFiles, nBytes atomic.Int64
	for _, f := range files {
		g.Go(func() error {
			for _, sem := range []struct {
				c    chan struct{}
				need bool
			}{{puts, !f.inline}, {big, f.size > bigFile}} {
				if !sem.need {
					continue
				}
				select {
				case sem.c <- struct{}{}:
				case <-ctx.Done():
					return ctx.Err()
				}
				defer func() { <-sem.c }()
			}
			e, err := s.storeLocal(ctx, src, f, o)
			if err != nil {
				return fmt.Errorf("%s: %w", f.rel, err)
			}
			f.dir.mu.Lock()
			f.dir.entries = append(f.dir.entries, e)
			f.dir.mu.Unlock()
			p := Progress{Files: nFiles.Add(1), Bytes: nBytes.Add(int64(e.Size))}
			if progress != nil {
				progress(p)
			}
			return nil
		})
	}
	err := g.Wait()
	res.Files, res.Bytes = nFiles.Load(), nBytes.Load()
	return err
}

// storeLocal stores one file of the tree. A put that fails is tried once
// more: a peer that fails a durability point fails the put, and the next
// one places around it (what was stored already is not sent again).
func (s *Service) storeLocal(ctx context.Context, src *os.Root, f *localFile, o engine.PutOptions) (format.DirEntry, error) {
	var e format.DirEntry
	var err error
	for try := 0; try < 2 && ctx.Err() == nil; try++ {
		var fh *os.File
		if fh, err = src.Open(f.rel); err != nil {
			return e, err
		}
		e, err = s.storeFile(ctx, fh, f.name, FileMeta{Mode: f.mode, MTime: f.mtime}, o, f.inline)
		fh.Close()
		if err == nil || kind.Of(err) == kind.Usage {
			return e, err
		}
		s.o.Log.Info("folder tree: a file's put failed, trying again", "kind", kind.Of(err).String())
	}
	return e, err
}

// newDir publishes d, and its folders first, as new folders.
func (s *Service) newDir(ctx context.Context, d *localDir, w keyring.DirWriteCap, res *TreeResult) error {
	snap := &format.Snapshot{}
	for _, e := range d.entries {
		snap.Set(e)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(folderWorkers)
	for _, sub := range d.dirs {
		cw := keyring.GenerateDirWriteCap()
		e := s.dirEntry(w, sub.name, cw, sub.mode)
		e.MTime = sub.mtime
		snap.Set(e)
		g.Go(func() error { return s.newDir(gctx, sub, cw, res) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	won, err := s.publish(ctx, w, 1, snap, nil)
	if err == nil && !won {
		err = fmt.Errorf("%w: a new folder's first record was refused", ErrConflict)
	}
	if err == nil {
		atomic.AddInt64(&res.Folders, 1)
	}
	return err
}

// mergeDir merges d into the existing folder w: one change to w. If its
// inline files would take w's past inlineBudget, they are stored as files
// of their own (with o) and the change is made again.
func (s *Service) mergeDir(ctx context.Context, d *localDir, w keyring.DirWriteCap, o engine.PutOptions, res *TreeResult) error {
	v, err := s.resolve(ctx, w.Read())
	if err != nil {
		return err
	}
	set := append([]format.DirEntry(nil), d.entries...)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(folderWorkers)
	for _, sub := range d.dirs {
		if i, ok := v.snap.Find(sub.name); ok && v.snap.Entries[i].Kind == format.EntryDir && v.snap.Entries[i].HasSeed {
			e := v.snap.Entries[i]
			if cw, ok := w.OpenChild(e.Dir.PublicKey(), e.Seed); ok {
				g.Go(func() error { return s.mergeDir(gctx, sub, cw, o, res) })
				continue
			}
		}
		cw := keyring.GenerateDirWriteCap()
		e := s.dirEntry(w, sub.name, cw, sub.mode)
		e.MTime = sub.mtime
		set = append(set, e)
		g.Go(func() error { return s.newDir(gctx, sub, cw, res) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if len(set) == 0 {
		return nil
	}
	err = s.update(ctx, w, mergeInto(set))
	if errors.Is(err, errInlineBudget) {
		if err = s.spill(ctx, set, o); err == nil {
			err = s.update(ctx, w, mergeInto(set))
		}
	}
	if err == nil {
		atomic.AddInt64(&res.Folders, 1)
	}
	return err
}

// mergeInto is the change that sets the entries of set in a folder.
func mergeInto(set []format.DirEntry) func(*format.Snapshot) error {
	return func(snap *format.Snapshot) error {
		changed, inline := false, false
		for i := range set {
			j, ok := snap.Find(set[i].Name)
			if ok && sameEntry(&snap.Entries[j], &set[i]) {
				continue
			}
			if ok && snap.Entries[j].Kind == format.EntryDir {
				// A folder is never replaced: one there from the start
				// (by a file), or made by another writer meanwhile (by
				// the new one made here: run again to merge into it).
				return fmt.Errorf("%w: %q is a folder", ErrExists, set[i].Name)
			}
			snap.Set(set[i])
			changed = true
			inline = inline || set[i].Kind == format.EntryInline
		}
		if !changed {
			return errUnchanged
		}
		if inline && inlineBytes(snap) > inlineBudget {
			return errInlineBudget
		}
		return nil
	}
}
