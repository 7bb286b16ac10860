package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/umbra-store/umbra/fuse"
	"github.com/umbra-store/umbra/internal/api"
	"github.com/umbra-store/umbra/internal/config"
	"github.com/umbra-store/umbra/internal/dirs"
	"github.com/umbra-store/umbra/internal/engine"
	"github.com/umbra-store/umbra/internal/kind"
	"github.com/umbra-store/umbra/internal/xfer"
	"github.com/umbra-store/umbra/keyring"
)

// mounts are the drives this daemon serves (umbra mount): in the daemon,
// a read's bytes go from the engine to the kernel with no pipe and no
// second process between them.
type mounts struct {
	store    *mountStore
	stageDir string
	log      *slog.Logger

	mu     sync.Mutex
	live   map[string]*liveMount // by directory; nil value: being mounted
	closed bool
}

func newMounts(g *graph, p *procs, totals *xfer.Counters, path, shards string, log *slog.Logger) *mounts {
	st := &mountStore{eng: g.eng, dirs: g.dirs, working: p.begin, totals: totals, shards: func() (int, int, error) {
		return config.ParseShards(shards)
	}}
	return &mounts{store: st, stageDir: filepath.Join(path, "staging"), log: log, live: map[string]*liveMount{}}
}

// mountMemory is what a mount adds to the daemon's Go heap limit: its
// chunk cache (32 MiB), the read-ahead in flight, and its uploads. Under
// the daemon's own limit alone, a mount's reads and cp -r spent much of
// their time collecting garbage (make bench, four rounds each: mount/get
// 0.61–0.63 and cp -r 365–492 files/s; with 96 MiB more, 0.64–0.75 and
// 540–629; 48 MiB more, 0.56–0.71 and 530–592). With the engine's
// buffers lent to the cache and given back (no allocation per chunk
// read), 32 MiB more still gave 0.50–0.64 and 419–468.
const mountMemory = 96 << 20

// raiseMemory raises the Go heap's soft limit by n until the returned func
// runs, unless the user set the limit (GOMEMLIMIT).
func raiseMemory(n int64) func() {
	if os.Getenv("GOMEMLIMIT") != "" {
		return func() {}
	}
	memMu.Lock()
	defer memMu.Unlock()
	cur := debug.SetMemoryLimit(-1)
	if cur > math.MaxInt64-n { // no limit
		return func() {}
	}
	debug.SetMemoryLimit(cur + n)
	return func() {
		memMu.Lock()
		debug.SetMemoryLimit(debug.SetMemoryLimit(-1) - n)
		memMu.Unlock()
	}
}

var memMu sync.Mutex

// liveMount is one mounted drive.
type liveMount struct {
	mt      *fuse.Mount
	done    chan struct{} // closed once unmounted and published
	leaving atomic.Bool   // its client went away: it is being unmounted

	mu    sync.Mutex
	ended bool
	err   error
}

// unmount publishes and unmounts; a mount still in use stays, and the
// error says so.
func (l *liveMount) unmount() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ended {
		return l.err
	}
	err := l.mt.Unmount()
	if err != nil && l.mt.Mounted() {
		return fmt.Errorf("%w (still in use: it stays mounted until umbra unmount %s)", err, l.mt.Dir)
	}
	l.ended, l.err = true, err
	return err
}

// closed ends a mount unmounted from outside: what is left is published.
func (l *liveMount) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.ended {
		l.ended, l.err = true, l.mt.Close()
	}
}

func (l *liveMount) result() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// Mount mounts req.Ref on req.Dir until ctx ends, the mount is unmounted
// from outside, or Unmount.
func (ms *mounts) Mount(ctx context.Context, req api.MountRequest, ready func(api.MountStatus)) error {
	dir := req.Dir
	if !filepath.IsAbs(dir) {
		return kind.New(kind.Usage, "daemon: mount: the directory must be an absolute path")
	}
	if st, err := os.Stat(dir); err == nil && !st.IsDir() {
		return kind.New(kind.Usage, fmt.Sprintf("%s is not a directory", dir))
	}
	if err := ms.reserve(ctx, dir); err != nil {
		return err
	}
	l, st, err := ms.start(ctx, req)
	ms.mu.Lock()
	if err == nil && ms.closed { // the daemon stopped while mounting
		err = kind.New(kind.Busy, "daemon: stopping")
	}
	if err != nil {
		delete(ms.live, dir)
		ms.mu.Unlock()
		if l != nil {
			_ = l.mt.Unmount()
		}
		return err
	}
	ms.live[dir] = l
	ms.mu.Unlock()
	go func() {
		l.mt.Wait()
		l.close()
		ms.mu.Lock()
		delete(ms.live, dir)
		ms.mu.Unlock()
		close(l.done)
	}()
	defer raiseMemory(mountMemory)()
	ready(st)
	select {
	case <-l.done:
	case <-ctx.Done(): // the client went away: its mount goes too
		l.leaving.Store(true)
		if err := l.unmount(); err != nil {
			l.leaving.Store(false)
			ms.log.Warn("mount: left mounted", "dir", dir, "err", err)
			return err
		}
		<-l.done
	}
	return l.result()
}

// reserve claims dir for a mount being made. A mount there whose client
// went away is waited for: it is being unmounted.
func (ms *mounts) reserve(ctx context.Context, dir string) error {
	for {
		ms.mu.Lock()
		l, ok := ms.live[dir]
		switch {
		case ms.closed:
			ms.mu.Unlock()
			return kind.New(kind.Busy, "daemon: stopping")
		case !ok:
			ms.live[dir] = nil
			ms.mu.Unlock()
			return nil
		case l == nil || !l.leaving.Load():
			ms.mu.Unlock()
			return fmt.Errorf("%w: %s", fuse.ErrMounted, dir)
		}
		ms.mu.Unlock()
		select {
		case <-l.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// start clears a stale mount on req.Dir, resolves the root and mounts it.
func (ms *mounts) start(ctx context.Context, req api.MountRequest) (*liveMount, api.MountStatus, error) {
	cleared, err := fuse.ClearStale(req.Dir)
	if err != nil {
		return nil, api.MountStatus{}, err
	}
	if cleared {
		ms.log.Info("mount: cleared a stale mount", "dir", req.Dir)
	}
	root, err := fuse.ResolveRoot(ctx, ms.store, req.Ref)
	if err != nil {
		return nil, api.MountStatus{}, err
	}
	if err := os.MkdirAll(ms.stageDir, 0o700); err != nil {
		return nil, api.MountStatus{}, err
	}
	mt, err := fuse.New(req.Dir, ms.store, root, fuse.Options{Log: ms.log, StageDir: ms.stageDir})
	if err != nil {
		return nil, api.MountStatus{}, err
	}
	st := api.MountStatus{Dir: req.Dir, Kind: "file", ReadOnly: !root.Writable, PID: os.Getpid(), Cleared: cleared}
	if root.IsFolder {
		st.Kind = "folder"
	}
	return &liveMount{mt: mt, done: make(chan struct{})}, st, nil
}

// Unmount ends this daemon's mount on dir.
func (ms *mounts) Unmount(ctx context.Context, dir string) error {
	ms.mu.Lock()
	l := ms.live[dir]
	ms.mu.Unlock()
	if l == nil {
		return kind.New(kind.NotFound, fmt.Sprintf("daemon: no mount of this daemon on %s", dir))
	}
	if err := l.unmount(); err != nil {
		return err
	}
	select {
	case <-l.done:
		return l.result()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// closeAll unmounts every mount (the daemon stops), publishing what was
// written, within d.
func (ms *mounts) closeAll(d time.Duration) {
	ms.mu.Lock()
	ms.closed = true
	var ls []*liveMount
	for _, l := range ms.live {
		if l != nil {
			ls = append(ls, l)
		}
	}
	ms.mu.Unlock()
	deadline := time.After(d)
	for _, l := range ls {
		if err := l.unmount(); err != nil {
			ms.log.Warn("mount: not unmounted at stop", "dir", l.mt.Dir, "err", err)
			continue
		}
		select {
		case <-l.done:
		case <-deadline:
			return
		}
	}
}

// mountStore is what a mount reads and writes through: the daemon's
// engine and folders, each call a user operation (every core in use),
// counted in the daemon's totals.
type mountStore struct {
	eng     *engine.Engine
	dirs    *dirs.Service
	shards  func() (k, m int, err error)
	working func() func()
	totals  *xfer.Counters
}

var (
	_ fuse.Lender   = (*mountStore)(nil)
	_ fuse.Store    = (*mountStore)(nil)
	_ fuse.Writer   = (*mountStore)(nil)
	_ fuse.Resolver = (*mountStore)(nil)
)

func (s *mountStore) ListRefs(ctx context.Context, folder string) ([]dirs.Entry, error) {
	defer s.working()()
	return s.dirs.ListRefs(ctx, folder)
}

func (s *mountStore) Chunks(ctx context.Context, file string) ([]uint64, error) {
	c, err := keyring.ParseReadCap(file)
	if err != nil {
		return nil, err
	}
	defer s.working()()
	return s.eng.Chunks(ctx, c)
}

func (s *mountStore) GetRange(ctx context.Context, file string, off, length int64, w io.Writer) error {
	c, err := keyring.ParseReadCap(file)
	if err != nil {
		return err
	}
	defer s.working()()
	return s.eng.ReadRange(xfer.With(ctx, s.totals), c, off, length, w)
}

func (s *mountStore) ReleaseChunk(buf []byte) { s.eng.ReleaseChunk(buf) }

func (s *mountStore) PutData(ctx context.Context, r io.Reader) (string, uint64, error) {
	k, m, err := s.shards()
	if err != nil {
		return "", 0, err
	}
	defer s.working()()
	res, err := s.eng.Put(xfer.With(ctx, s.totals), r, engine.PutOptions{K: k, M: m})
	if err != nil {
		return "", 0, err
	}
	return res.Cap.Encode(), res.Size, nil
}

func (s *mountStore) PutFiles(ctx context.Context, files []*io.SectionReader) ([]string, error) {
	k, m, err := s.shards()
	if err != nil {
		return nil, err
	}
	rs := make([]io.Reader, len(files))
	for i, f := range files {
		rs[i] = f
	}
	defer s.working()()
	res, err := s.eng.PutFiles(xfer.With(ctx, s.totals), engine.PutOptions{K: k, M: m}, rs)
	if err != nil {
		return nil, err
	}
	refs := make([]string, len(res))
	for i, r := range res {
		refs[i] = r.Cap.Encode()
	}
	return refs, nil
}

func (s *mountStore) Apply(ctx context.Context, folder string, ops []dirs.Op) (map[string]string, error) {
	defer s.working()()
	return s.dirs.Apply(ctx, folder, ops)
}

func (s *mountStore) Share(ctx context.Context, path, as string) (string, error) {
	return s.dirs.Share(ctx, path, as)
}

func (s *mountStore) FileInfo(ctx context.Context, capText string) (string, uint64, error) {
	f, err := s.dirs.OpenFile(ctx, capText)
	if err != nil {
		return "", 0, err
	}
	if f.Cap == nil {
		return f.Name, uint64(len(f.Inline)), nil
	}
	info, err := s.eng.Stat(ctx, *f.Cap)
	if info.Name == "" {
		info.Name = f.Name
	}
	return info.Name, info.Size, err
}
