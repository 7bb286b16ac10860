package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/umbra-store/umbra/fuse"
	"github.com/umbra-store/umbra/internal/api"
	"github.com/umbra-store/umbra/internal/config"
	"github.com/umbra-store/umbra/internal/kind"
	"github.com/umbra-store/umbra/internal/xfer"
)

// mounts are the drives this daemon serves (umbra mount): in the daemon,
// a read's bytes go from the engine to the kernel with no pipe and no
// second process between them.
type mounts struct {
	store    *MountStore
	node     string // the node directory, symlinks resolved
	stageDir string
	log      *slog.Logger
	cache    *fuse.Cache // shared by the drives

	mu       sync.Mutex
	live     map[string]*liveMount // by directory; nil value: being mounted
	closed   bool
	starting sync.WaitGroup // mounts being made
}

func newMounts(g *graph, p *procs, totals *xfer.Counters, path, shards string, log *slog.Logger) *mounts {
	st := &MountStore{eng: g.eng, dirs: g.dirs, working: p.begin, totals: totals, shards: func() (int, int, error) {
		return config.ParseShards(shards)
	}}
	node, err := filepath.Abs(path)
	if err == nil {
		node, err = filepath.EvalSymlinks(node)
	}
	if err != nil {
		node = path
	}
	return &mounts{store: st, node: node, stageDir: filepath.Join(path, "staging"), log: log,
		cache: fuse.NewCache(mountCache, st), live: map[string]*liveMount{}}
}

// maxMounts bounds the drives one daemon serves.
const maxMounts = 8

// mountCache bounds the decrypted chunks all of a daemon's drives keep
// (one cache for them all: the daemon's memory does not grow with them).
const mountCache = 32 << 20

// liveMount is one mounted drive.
type liveMount struct {
	mt   *fuse.Mount
	done chan struct{} // closed once unmounted and published

	mu      sync.Mutex
	ended   bool
	err     error
	leaving chan struct{} // not nil while its gone client's unmount runs; closed if it fails
}

// unmount unmounts and then publishes; a mount still in use stays, and
// nothing is published (fuse.ErrInUse).
func (l *liveMount) unmount() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ended {
		return l.err
	}
	err := l.mt.Unmount()
	if errors.Is(err, fuse.ErrInUse) {
		return err
	}
	l.ended, l.err = true, err
	return err
}

// detach unmounts lazily (the daemon stops: whatever still uses the
// drive loses it) and publishes.
func (l *liveMount) detach() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.ended {
		l.ended, l.err = true, l.mt.Detach()
	}
	return l.err
}

// close ends a mount unmounted from outside: what is left is published.
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

// leave unmounts a mount whose client went away; waiters on the directory
// learn whether it stays.
func (l *liveMount) leave() error {
	l.mu.Lock()
	ch := make(chan struct{})
	l.leaving = ch
	l.mu.Unlock()
	err := l.unmount()
	if err != nil {
		l.mu.Lock()
		l.leaving = nil
		l.mu.Unlock()
		close(ch)
	}
	return err
}

// leavingCh is the channel of a leave in progress (nil: none).
func (l *liveMount) leavingCh() chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.leaving
}

// canonical checks a mount directory and returns it with symlinks
// resolved: the registry, the kernel's mount table and a second request
// must all name it alike. The node directory is never mounted over or
// under (the daemon's socket, store and staging live there).
func (ms *mounts) canonical(dir string) (string, error) {
	if !filepath.IsAbs(dir) {
		return "", kind.New(kind.Usage, "daemon: mount: the directory must be an absolute path")
	}
	st, err := os.Stat(dir)
	if err != nil {
		if !errors.Is(err, syscall.ENOTCONN) { // a stale mount is cleared later
			return "", err
		}
		return filepath.Clean(dir), nil
	}
	if !st.IsDir() {
		return "", kind.New(kind.Usage, fmt.Sprintf("%s is not a directory", dir))
	}
	dir, err = filepath.EvalSymlinks(dir)
	if err != nil {
		return "", err
	}
	if within(dir, ms.node) || within(ms.node, dir) {
		return "", kind.New(kind.Usage, fmt.Sprintf("daemon: mount: %s holds or is inside the node directory", dir))
	}
	return dir, nil
}

// within reports whether path is dir or below it.
func within(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// drop forgets the mount on dir; with none left, the drives' cached chunks
// go too. Under ms.mu.
func (ms *mounts) drop(dir string) {
	delete(ms.live, dir)
	if len(ms.live) == 0 {
		ms.cache.Clear()
	}
}

// Mount mounts req.Ref on req.Dir until ctx ends (the client went away:
// unmounted), the mount is unmounted from outside, or Unmount.
func (ms *mounts) Mount(ctx context.Context, req api.MountRequest, ready func(api.MountStatus)) error {
	dir, err := ms.canonical(req.Dir)
	if err != nil {
		return err
	}
	if err := ms.reserve(ctx, dir); err != nil {
		return err
	}
	l, st, err := ms.start(ctx, req, dir)
	ms.mu.Lock()
	if err == nil && ms.closed { // the daemon stopped while mounting
		err = kind.New(kind.Busy, "daemon: stopping")
		_ = l.detach()
	}
	if err != nil {
		ms.drop(dir)
		ms.mu.Unlock()
		ms.starting.Done()
		return err
	}
	ms.live[dir] = l
	ms.mu.Unlock()
	ms.starting.Done()
	go func() {
		l.mt.Wait()
		l.close()
		ms.mu.Lock()
		ms.drop(dir)
		ms.mu.Unlock()
		close(l.done)
	}()
	st.Dir = req.Dir
	ready(st)
	select {
	case <-l.done:
	case <-ctx.Done(): // the client went away: its mount goes too
		if err := l.leave(); err != nil {
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
		case !ok && len(ms.live) >= maxMounts:
			ms.mu.Unlock()
			return kind.New(kind.Busy, fmt.Sprintf("daemon: at most %d drives at once", maxMounts))
		case !ok:
			ms.live[dir] = nil
			ms.starting.Add(1)
			ms.mu.Unlock()
			return nil
		}
		ms.mu.Unlock()
		var leaving chan struct{}
		if l != nil {
			leaving = l.leavingCh()
		}
		if leaving == nil {
			return fmt.Errorf("%w: %s", fuse.ErrMounted, dir)
		}
		select {
		case <-l.done:
		case <-leaving: // it stays: asked again, ErrMounted
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// start clears a stale mount on dir, resolves the root and mounts it.
func (ms *mounts) start(ctx context.Context, req api.MountRequest, dir string) (*liveMount, api.MountStatus, error) {
	cleared, err := fuse.ClearStale(dir)
	if err != nil {
		return nil, api.MountStatus{}, err
	}
	if cleared {
		ms.log.Info("mount: cleared a stale mount", "dir", dir)
	}
	root, err := fuse.ResolveRoot(ctx, ms.store, req.Ref)
	if err != nil {
		return nil, api.MountStatus{}, err
	}
	if err := os.MkdirAll(ms.stageDir, 0o700); err != nil {
		return nil, api.MountStatus{}, err
	}
	mt, err := fuse.New(dir, ms.store, root, fuse.Options{Log: ms.log, StageDir: ms.stageDir, Cache: ms.cache})
	if err != nil {
		return nil, api.MountStatus{}, err
	}
	st := api.MountStatus{Dir: dir, Kind: "file", ReadOnly: !root.Writable, PID: os.Getpid(), Cleared: cleared}
	if root.IsFolder {
		st.Kind = "folder"
	}
	return &liveMount{mt: mt, done: make(chan struct{})}, st, nil
}

// Unmount ends this daemon's mount on dir.
func (ms *mounts) Unmount(ctx context.Context, dir string) error {
	if c, err := filepath.EvalSymlinks(dir); err == nil {
		dir = c
	}
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
// written, within d: a mount in use is detached.
func (ms *mounts) closeAll(d time.Duration) {
	ms.mu.Lock()
	ms.closed = true
	ms.mu.Unlock()
	deadline := time.After(d)
	started := make(chan struct{})
	go func() { ms.starting.Wait(); close(started) }()
	select {
	case <-started:
	case <-deadline:
	}
	ms.mu.Lock()
	var ls []*liveMount
	for _, l := range ms.live {
		if l != nil {
			ls = append(ls, l)
		}
	}
	ms.mu.Unlock()
	var wg sync.WaitGroup
	for _, l := range ls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := l.unmount()
			if errors.Is(err, fuse.ErrInUse) {
				ms.log.Warn("mount: in use at stop, detached", "dir", l.mt.Dir)
				err = l.detach()
			}
			if err != nil {
				ms.log.Warn("mount: at stop", "dir", l.mt.Dir, "err", err)
			}
		}()
	}
	all := make(chan struct{})
	go func() { wg.Wait(); close(all) }()
	select {
	case <-all:
	case <-deadline:
		ms.log.Warn("mount: drives still publishing at stop")
	}
}
