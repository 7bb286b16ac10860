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
// (Variables: a test lowers them to perform the attack they stop.)
var (
	maxTreeDepth   = 256
	maxTreeEntries = 2_000_000
	maxTreeFolders = 200_000
)

// ErrCycle: a folder is linked inside itself.
var ErrCycle = kind.New(kind.Corrupt, "dirs: a folder is linked inside itself")

type remoteFile struct {
	rel   string
	entry format.DirEntry
}

// GetOptions tune GetTree.
type GetOptions struct {
	Force bool   // replace existing files
	Umask uint32 // cleared from every mode, as for any file the user makes
}

// GetTree fetches the folder at path into dst: its files and folders,
// with their names, mtimes and permission bits (less the umask; setuid,
// setgid and sticky are never restored from a folder someone else may
// have written). Existing files are not replaced unless o.Force.
func (s *Service) GetTree(ctx context.Context, p string, dst *os.Root, o GetOptions, progress func(Progress)) (TreeResult, error) {
	force := o.Force
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
			if err := s.fetchFile(gctx, dst, f, o); err != nil {
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
		if err := dst.Chmod(d.rel, fileMode(d.entry.Mode, o.Umask)); err != nil {
			return res, err
		}
		mt := timeOf(d.entry.MTime)
		if err := dst.Chtimes(d.rel, mt, mt); err != nil {
			return res, err
		}
	}
	return res, nil
}

// listTree resolves every folder under c, a level at a time
// (folderWorkers at once), makes each in dst, and returns the folders and
// the files. A tree's folders and entries are counted before any is made:
// a writer can link one folder into many places.
func (s *Service) listTree(ctx context.Context, c keyring.DirReadCap, dst *os.Root, force bool) ([]remoteDir, []remoteFile, error) {
	type pending struct {
		c keyring.DirReadCap
		d remoteDir
	}
	level := []pending{{c, remoteDir{rel: ".", above: map[[32]byte]bool{}}}}
	var dirs []remoteDir
	var files []remoteFile
	entries := 0
	for len(level) > 0 {
		snaps := make([]*format.Snapshot, len(level))
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(folderWorkers)
		for i, p := range level {
			if p.d.above[p.c.ID()] {
				return nil, nil, fmt.Errorf("%w: %s", ErrCycle, p.d.rel)
			}
			g.Go(func() error {
				v, err := s.resolve(gctx, p.c)
				if err != nil {
					return fmt.Errorf("%s: %w", p.d.rel, err)
				}
				snaps[i] = v.snap
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return nil, nil, err
		}
		var next []pending
		for i, p := range level {
			dirs = append(dirs, p.d)
			if entries += len(snaps[i].Entries); entries > maxTreeEntries || len(dirs)+len(next) > maxTreeFolders {
				return nil, nil, fmt.Errorf("%w: more than %d entries or %d folders in the tree", ErrBadPath, maxTreeEntries, maxTreeFolders)
			}
			above := maps.Clone(p.d.above)
			above[p.c.ID()] = true
			for j := range snaps[i].Entries {
				e := snaps[i].Entries[j]
				rel := path.Join(p.d.rel, e.Name)
				if e.Kind != format.EntryDir {
					files = append(files, remoteFile{rel: rel, entry: e})
					continue
				}
				if p.d.depth+1 > maxTreeDepth {
					return nil, nil, fmt.Errorf("%w: %s: more than %d folders deep", ErrBadPath, rel, maxTreeDepth)
				}
				next = append(next, pending{e.Dir, remoteDir{rel: rel, entry: &e, depth: p.d.depth + 1, above: above}})
			}
		}
		if len(dirs)+len(next) > maxTreeFolders {
			return nil, nil, fmt.Errorf("%w: more than %d folders in the tree", ErrBadPath, maxTreeFolders)
		}
		for _, p := range next {
			if err := dst.Mkdir(p.d.rel, 0o700); err != nil && !(force && errors.Is(err, fs.ErrExist)) {
				return nil, nil, err
			}
		}
		level = next
	}
	return dirs, files, nil
}

func (s *Service) fetchFile(ctx context.Context, dst *os.Root, f remoteFile, o GetOptions) error {
	flag := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if o.Force {
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
		err = fh.Chmod(fileMode(f.entry.Mode, o.Umask))
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
