package fuse

import (
	"bufio"
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

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/umbra-store/umbra/internal/dirs"
	"github.com/umbra-store/umbra/internal/kind"
)

// Options tune a mount; zero fields take the defaults.
type Options struct {
	Log *slog.Logger
	// CacheBytes bounds the decrypted chunks kept. Default 32 MiB.
	CacheBytes int64
	// Cache, if set, is the chunk cache instead, shared with other mounts
	// of the same store (CacheBytes is then its business).
	Cache *Cache
	// ReadAhead is how many chunks a sequential reader has fetched ahead
	// of it. Default 16.
	ReadAhead int
	// ListTTL is how long a folder's listing is used before it is taken
	// again. Default 2 s.
	ListTTL time.Duration
	// EntryTimeout is how long the kernel keeps names and attributes.
	// Default 1 s.
	EntryTimeout time.Duration
	// FlushInterval is how often folders changed here are published.
	// Default 1 s.
	FlushInterval time.Duration
	// StageDir holds the sealed staging files of a read-write mount.
	// Default: the system's temporary directory.
	StageDir string
}

// uploadWorkers is how many files a read-write mount uploads at once.
const uploadWorkers = 8

// Root is what is mounted: a folder, or a single file (shown in a folder
// of its own under Name).
type Root struct {
	Ref      string
	IsFolder bool
	Writable bool
	Name     string // a file's name in the mount
	Size     uint64 // a file's size
}

// Mount is a mounted folder.
type Mount struct {
	Dir string
	srv *fuse.Server
	m   *mount
}

// mount is the state every node shares.
type mount struct {
	store    Store
	w        Writer // nil: read-only
	stageDir string
	uploads  chan struct{} // files over BatchFile uploading
	backlog  backlog       // closed files in memory, uploading
	batch    *batcher
	mu       sync.Mutex
	dirty    map[*dirNode]bool
	o        Options
	log      *slog.Logger
	cache    *chunkCache
	ahead    chan struct{} // read-ahead fetches in flight
	bg       context.Context
	stop     context.CancelFunc
	since    time.Time
}

// ErrMounted: the directory is already a live mount.
var ErrMounted = kind.New(kind.Busy, "fuse: the directory is already mounted")

// New mounts root on dir. As root it mounts directly (no fusermount).
func New(dir string, st Store, root Root, o Options) (*Mount, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.CacheBytes == 0 {
		o.CacheBytes = 32 << 20
	}
	if o.ReadAhead == 0 {
		o.ReadAhead = 16
	}
	if o.ListTTL == 0 {
		o.ListTTL = 2 * time.Second
	}
	if o.EntryTimeout == 0 {
		o.EntryTimeout = time.Second
	}
	if o.FlushInterval == 0 {
		o.FlushInterval = time.Second
	}
	if o.StageDir == "" {
		o.StageDir = os.TempDir()
	}
	if o.Cache == nil {
		o.Cache = NewCache(o.CacheBytes, st)
	}
	m := &mount{store: st, o: o, log: o.Log, cache: o.Cache.c,
		ahead: make(chan struct{}, o.ReadAhead), since: time.Now(), stageDir: o.StageDir,
		uploads: make(chan struct{}, uploadWorkers), batch: newBatcher(), dirty: map[*dirNode]bool{}}
	if w, ok := st.(Writer); ok && root.Writable {
		m.w = w
	} else {
		root.Writable = false
	}
	m.bg, m.stop = context.WithCancel(context.Background())
	var top fs.InodeEmbedder
	attr := dirs.Entry{Kind: "folder", Mode: 0o555, MTime: m.since.UnixNano()}
	if root.Writable {
		attr.Mode = 0o755
	}
	if root.IsFolder {
		top = &dirNode{m: m, ref: root.Ref, attr: attr, writable: root.Writable}
	} else {
		f := dirs.Entry{Name: root.Name, Kind: "file", Ref: root.Ref, Size: root.Size, Mode: 0o444, MTime: m.since.UnixNano()}
		top = &fileDir{m: m, file: f, attr: attr}
	}
	// No splice: reads answer from memory, never from a file descriptor.
	mo := fuse.MountOptions{FsName: "umbra", Name: "umbra", MaxReadAhead: 1 << 20, MaxWrite: 1 << 20,
		DisableXAttrs: true, DisableSplice: true, Logger: slog.NewLogLogger(o.Log.Handler(), slog.LevelDebug)}
	if os.Geteuid() == 0 {
		mo.DirectMount, mo.DirectMountStrict = true, true
	}
	if !root.Writable {
		mo.Options = append(mo.Options, "ro")
	}
	srv, err := fs.Mount(dir, top, &fs.Options{MountOptions: mo, EntryTimeout: &o.EntryTimeout,
		AttrTimeout: &o.EntryTimeout, NegativeTimeout: &o.EntryTimeout})
	if err != nil {
		m.stop()
		return nil, fmt.Errorf("fuse: mount %s: %w", dir, err)
	}
	if m.w != nil {
		go m.flusher()
		for range batchWorkers {
			go m.batchWorker()
		}
	}
	raiseReadAhead(dir, o.Log)
	return &Mount{Dir: dir, srv: srv, m: m}, nil
}

// ErrInUse: an unmount refused while the drive is in use (an open file, a
// working directory); it stays mounted, and nothing was published.
var ErrInUse = kind.New(kind.Busy, "fuse: the drive is in use")

// Unmount unmounts, waits for the requests in flight, then publishes
// every change made (files closed or not): nothing written can come after
// the publish. A mount in use stays mounted and working (ErrInUse).
func (mt *Mount) Unmount() error {
	if err := mt.srv.Unmount(); err != nil {
		return fmt.Errorf("%w: %s (%v)", ErrInUse, mt.Dir, err)
	}
	return mt.Close()
}

// Detach unmounts lazily (MNT_DETACH: processes still using the drive
// keep it until they let go, served until this process ends) and
// publishes what was written until now.
func (mt *Mount) Detach() error {
	if err := unix.Unmount(mt.Dir, unix.MNT_DETACH); err != nil {
		return fmt.Errorf("fuse: detach %s: %w", mt.Dir, err)
	}
	return mt.Close()
}

// Close ends a mount unmounted from outside (Wait returned), or detached:
// what is left is published and the background work stopped.
func (mt *Mount) Close() error {
	err := mt.publish()
	mt.m.stop()
	return err
}

// publish uploads the files written (closed or not) and publishes their
// folders.
func (mt *Mount) publish() error {
	if mt.m.w == nil {
		return nil
	}
	return mt.m.flushAll(mt.m.bg, true)
}

// Wait waits until the mount is unmounted (by Unmount, or from outside).
func (mt *Mount) Wait() { mt.srv.Wait() }

// publishLimit bounds a change that an interrupt does not stop
// (publishCtx); the store's own steps end well before it.
const publishLimit = 5 * time.Minute

// publishCtx is the context of a change to the store that must not stop
// at an interrupt once begun: the kernel sends one when the caller gets a
// signal (Go's runtime signals its own threads all the time), and a caller
// retries on EINTR a change that may have been made. It ends with the
// mount, or after publishLimit.
func (m *mount) publishCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	c, cancel := context.WithTimeout(context.WithoutCancel(ctx), publishLimit)
	stop := context.AfterFunc(m.bg, cancel)
	return c, func() { stop(); cancel() }
}

// node makes the node of entry e of folder d, and its file type.
func (m *mount) node(d *dirNode, e dirs.Entry) (fs.InodeEmbedder, uint32) {
	if e.Kind == "folder" {
		return &dirNode{m: m, ref: e.Ref, attr: e, writable: d.writable && e.Writable}, fuse.S_IFDIR
	}
	return &fileNode{m: m, e: e, dir: d, name: e.Name}, fuse.S_IFREG
}

// fill sets the attributes of entry e.
func (m *mount) fill(e dirs.Entry, a *fuse.Attr) {
	mt := time.Unix(0, e.MTime)
	a.Mode = e.Mode & 0o7777
	if e.Kind == "folder" {
		a.Mode |= fuse.S_IFDIR
		a.Nlink = 2
	} else {
		a.Mode |= fuse.S_IFREG
		a.Nlink = 1
		a.Size = e.Size
		a.Blocks = (e.Size + 511) / 512
	}
	a.SetTimes(&mt, &mt, &mt)
	a.Blksize = 1 << 20
}

// ClearStale unmounts dir if a mount process that died left it behind (the
// kernel answers ENOTCONN for it), and says whether it did. A live mount
// there is ErrMounted.
func ClearStale(dir string) (bool, error) {
	_, err := os.Stat(dir)
	if err != nil && !errors.Is(err, syscall.ENOTCONN) {
		return false, err
	}
	mounted, merr := isMountPoint(dir)
	if merr != nil {
		return false, merr
	}
	if err == nil && !mounted {
		return false, nil
	}
	// The kernel may answer stat of the root from its cache: statfs must
	// reach the mount's process, and fails with ENOTCONN once it is gone.
	var st unix.Statfs_t
	if serr := unix.Statfs(dir, &st); serr == nil {
		return false, fmt.Errorf("%w: %s", ErrMounted, dir)
	} else if !errors.Is(serr, syscall.ENOTCONN) && !errors.Is(err, syscall.ENOTCONN) {
		return false, serr
	}
	if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
		return false, fmt.Errorf("fuse: clear the stale mount on %s: %w", dir, err)
	}
	return true, nil
}

// Unmount unmounts dir from outside (umbra unmount): a stale mount is
// detached.
func Unmount(dir string) error {
	if stale, err := ClearStale(dir); stale || (err != nil && !errors.Is(err, ErrMounted)) {
		return err
	}
	if err := unix.Unmount(dir, 0); err != nil {
		if errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("fuse: %s is not mounted", dir)
		}
		return fmt.Errorf("fuse: unmount %s: %w", dir, err)
	}
	return nil
}

// isMountPoint reports whether dir is a mount point (/proc/self/mountinfo).
func isMountPoint(dir string) (bool, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return false, err
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && unescape(fields[4]) == abs {
			return true, nil
		}
	}
	return false, sc.Err()
}

// unescape undoes mountinfo's octal escapes of space, tab, newline and
// backslash.
func unescape(s string) string {
	r := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`)
	return r.Replace(s)
}

// readAheadKB is the kernel read-ahead asked for a mount: the kernel's
// default (128 KiB) sends one small read at a time, each a round trip;
// umbra reads whole chunks anyway (about 1 MiB).
const readAheadKB = 8192

// raiseReadAhead sets the mount's read-ahead through its backing device
// info in sysfs (as root; best effort).
func raiseReadAhead(dir string, log *slog.Logger) {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return
	}
	p := fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", unix.Major(st.Dev), unix.Minor(st.Dev))
	if err := os.WriteFile(p, []byte(fmt.Sprint(readAheadKB)), 0o644); err != nil {
		log.Debug("fuse: read-ahead not raised", "err", err)
	}
}
