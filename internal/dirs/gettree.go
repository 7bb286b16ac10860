package dirs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"sort"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/umbra-store/umbra/internal/format"
	"github.com/umbra-store/umbra/internal/kind"
	"github.com/umbra-store/umbra/keyring"
)

// remoteDir is a folder of the tree being fetched.
type remoteDir struct {
	rel   string
	entry *format.DirEntry // nil at the top
	depth int
	// above are the ids of the folders it is in: a folder linked into
	// itself or below itself would make the tree endless.
	above map[[32]byte]bool
}

// Bounds of a fetched tree: a writer can link folders into one another.
const (
	maxTreeDepth   = 256
	maxTreeEntries = 10_000_000
)

// ErrCycle: a folder is linked inside itself.
var ErrCycle = kind.New(kind.Corrupt, "dirs: a folder is linked inside itself")

type remoteFile struct {
	rel   string
	entry format.DirEntry
}

// GetTree fetches the folder at path into dst: its files and folders,
// with their names, modes and mtimes. Existing files are not replaced
// unless force.
func (s *Service) GetTree(ctx context.Context, p string, dst *os.Root, force bool, progress func(Progress)) (TreeResult, error) {
	t, err := s.parse(p)
	if err != nil {
		return TreeResult{}, err
	}
	n, err := s.walk(ctx, t)
	if err != nil {
		return TreeResult{}, err
	}
	if n.verify != nil {
		return TreeResult{}, ErrVerifyOnly
	}
	if !n.isDir() {
		return TreeResult{}, fmt.Errorf("%w: %s (get without -r fetches a file)", ErrNotDir, prefix(t.text, t.names))
	}
	dirs, files, err := s.listTree(ctx, *n.dir, dst, force)
	if err != nil {
		return TreeResult{}, err
	}
	res := TreeResult{Folders: int64(len(dirs))}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(treeWorkers)
	var nFiles, nBytes atomic.Int64
	for _, f := range files {
		g.Go(func() error {
			if err := s.fetchFile(gctx, dst, f, force); err != nil {
				return fmt.Errorf("%s: %w", f.rel, err)
			}
			pr := Progress{Files: nFiles.Add(1), Bytes: nBytes.Add(int64(f.entry.Size))}
			if progress != nil {
				progress(pr)
			}
			return nil
		})
	}
	err = g.Wait()
	res.Files, res.Bytes = nFiles.Load(), nBytes.Load()
	if err != nil {
		return res, err
	}
	// Folders' modes and times last, deepest first: writing into a folder
	// changes its mtime, and a read-only mode would stop the writes.
	sort.SliceStable(dirs, func(i, j int) bool { return dirs[i].depth > dirs[j].depth })
	for _, d := range dirs {
		if d.entry == nil {
			continue
		}
		if err := dst.Chmod(d.rel, fileMode(d.entry.Mode)); err != nil {
			return res, err
		}
		mt := timeOf(d.entry.MTime)
		if err := dst.Chtimes(d.rel, mt, mt); err != nil {
			return res, err
		}
	}
	return res, nil
}

// listTree resolves every folder under c (folderWorkers at once), makes
// each in dst, and returns the folders and the files.
func (s *Service) listTree(ctx context.Context, c keyring.DirReadCap, dst *os.Root, force bool) ([]remoteDir, []remoteFile, error) {
	var mu sync.Mutex
	var dirs []remoteDir
	var files []remoteFile
	g, gctx := errgroup.WithContext(ctx)
	sem := make(chan struct{}, folderWorkers)
	var visit func(c keyring.DirReadCap, d remoteDir) error
	var entries atomic.Int64
	visit = func(c keyring.DirReadCap, d remoteDir) error {
		if d.above[c.ID()] {
			return fmt.Errorf("%w: %s", ErrCycle, d.rel)
		}
		if d.depth > maxTreeDepth {
			return fmt.Errorf("%w: %s: more than %d folders deep", ErrBadPath, d.rel, maxTreeDepth)
		}
		sem <- struct{}{}
		v, err := s.resolve(gctx, c)
		<-sem
		if err != nil {
			return fmt.Errorf("%s: %w", d.rel, err)
		}
		if entries.Add(int64(len(v.snap.Entries))) > maxTreeEntries {
			return fmt.Errorf("%w: more than %d entries in the tree", ErrBadPath, maxTreeEntries)
		}
		above := maps.Clone(d.above)
		above[c.ID()] = true
		mu.Lock()
		dirs = append(dirs, d)
		mu.Unlock()
		for i := range v.snap.Entries {
			e := v.snap.Entries[i]
			rel := path.Join(d.rel, e.Name)
			if e.Kind != format.EntryDir {
				mu.Lock()
				files = append(files, remoteFile{rel: rel, entry: e})
				mu.Unlock()
				continue
			}
			if err := dst.Mkdir(rel, 0o700); err != nil && !(force && errors.Is(err, fs.ErrExist)) {
				return err
			}
			g.Go(func() error { return visit(e.Dir, remoteDir{rel: rel, entry: &e, depth: d.depth + 1, above: above}) })
		}
		return nil
	}
	g.Go(func() error { return visit(c, remoteDir{rel: ".", above: map[[32]byte]bool{}}) })
	err := g.Wait()
	return dirs, files, err
}

func (s *Service) fetchFile(ctx context.Context, dst *os.Root, f remoteFile, force bool) error {
	flag := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if force {
		flag = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	fh, err := dst.OpenFile(f.rel, flag, 0o600)
	if err != nil {
		return err
	}
	switch f.entry.Kind {
	case format.EntryInline:
		_, err = fh.Write(f.entry.Data)
	case format.EntryFile:
		err = s.eng.Get(ctx, f.entry.File, fh)
	}
	// Mode and times through the open file: no second lookup of its name.
	if err == nil {
		err = fh.Chmod(fileMode(f.entry.Mode))
	}
	if err == nil {
		err = setTimes(fh, timeOf(f.entry.MTime))
	}
	if cerr := fh.Close(); err == nil {
		err = cerr
	}
	return err
}

// setTimes sets an open file's access and modification times
// (futimens: nanoseconds, no lookup by name).
func setTimes(f *os.File, t time.Time) error {
	ts := []unix.Timespec{unix.NsecToTimespec(t.UnixNano()), unix.NsecToTimespec(t.UnixNano())}
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		_, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, fd, 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0)
		if e != 0 {
			serr = &os.PathError{Op: "futimens", Path: f.Name(), Err: e}
		}
	}); err != nil {
		return err
	}
	return serr
}
