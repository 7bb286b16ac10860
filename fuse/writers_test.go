package fuse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/umbra-store/umbra/internal/dirs"
	"github.com/umbra-store/umbra/internal/randstream"
)

// mountOpts makes a new folder on l and mounts it read-write through st
// with options o (StageDir filled in).
func mountOpts(t *testing.T, l *local, st Store, o Options) (string, string, *Mount) {
	t.Helper()
	c, err := l.dirs.Mkdir(context.Background(), "", false)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if o.StageDir == "" {
		o.StageDir = t.TempDir()
	}
	mt, err := New(dir, st, Root{Ref: c, IsFolder: true, Writable: true}, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := mt.Unmount(); err != nil {
			t.Errorf("unmount: %v", err)
		}
	})
	return c, dir, mt
}

// TestSecondHandleAfterFsync: a file kept open after an fsync (its stage
// kept, its change published) is looked up again by path and opened a
// second time: both handles are the one node, their writes one file.
// Before, Lookup made a second node (sameNode refused a node with a
// stage): the two handles wrote two stages, and only one was published.
func TestSecondHandleAfterFsync(t *testing.T) {
	needFUSE(t)
	l := newLocal(t)
	// A tiny entry timeout: the kernel looks the name up again at each
	// open by path (as it does after the default 1 s).
	c, dir, mt := mountOpts(t, l, l, Options{EntryTimeout: time.Nanosecond, FlushInterval: time.Hour})
	p := filepath.Join(dir, "a")
	f1, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f1.WriteAt([]byte("1"), 0); err != nil {
		t.Fatal(err)
	}
	if err := f1.Sync(); err != nil {
		t.Fatal(err)
	}
	f2, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f1.WriteAt([]byte("2"), 1); err != nil {
		t.Fatal(err)
	}
	if _, err := f2.WriteAt([]byte("3"), 2); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8)
	n, _ := f1.ReadAt(buf, 0)
	seen := string(buf[:n])
	f1.Close()
	f2.Close()
	if err := mt.Unmount(); err != nil {
		t.Fatal(err)
	}
	got, err := published(t, l, c, "a")
	if err != nil || got != "123" || seen != "123" {
		t.Fatalf("two handles wrote 1,2,3 at 0,1,2: handle 1 reads %q, published %q (%v)", seen, got, err)
	}
}

// unitMount is a mount's shared state with no kernel and no store: enough
// for a file node's own methods (inline uploads need no store).
func unitMount(t *testing.T) *mount {
	m := &mount{log: slog.New(slog.DiscardHandler), stageDir: t.TempDir(), dirty: map[*dirNode]bool{},
		batch: newBatcher(), uploads: make(chan struct{}, uploadWorkers), ahead: make(chan struct{}, 16),
		cache: newChunkCache(32<<20, nil)}
	m.bg, m.stop = context.WithCancel(context.Background())
	t.Cleanup(m.stop)
	return m
}

// waitBlockedIn waits until some goroutine's stack holds fn (the test
// holds the lock it waits for: it cannot go on until released).
func waitBlockedIn(t *testing.T, fn string) {
	t.Helper()
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		for _, g := range strings.Split(string(buf[:n]), "\n\n") {
			if strings.Contains(g, fn) && strings.Contains(g, "sync.(*Mutex).Lock") {
				return
			}
		}
		runtime.Gosched()
	}
}

// TestOpenForWriteRacesUpload: a file closed with its upload in flight
// (as after "echo hi > f", then "echo >> f") is opened for writing; the
// upload completes between Open's staging and its count of the open, and,
// the file being closed, drops the stage. Open stages it again. Before,
// it counted the open with no stage and every write through that handle
// failed with EBADF.
func TestOpenForWriteRacesUpload(t *testing.T) {
	m := unitMount(t)
	d := &dirNode{m: m, writable: true}
	f := &fileNode{m: m, dir: d, name: "f", e: dirs.Entry{Name: "f", Kind: "file", Mode: 0o644}}
	f.stage = newStage(m.stageDir)
	if err := f.stage.WriteAt([]byte("x"), 0); err != nil {
		t.Fatal(err)
	}
	f.gen = 1 // written, closed (opens 0), not uploaded yet

	d.mu.Lock() // holds Open in its pendHere, after toStage found the stage
	type res struct {
		flags uint32
		errno syscall.Errno
	}
	opened := make(chan res, 1)
	go func() {
		_, flags, errno := f.Open(context.Background(), syscall.O_WRONLY)
		opened <- res{flags, errno}
	}()
	waitBlockedIn(t, "(*fileNode).pendHere")
	// The upload (started at the last close) completes meanwhile.
	// It drops the stage (the file is closed) before it waits for the
	// folder (held here) to record the change: wait for that.
	f.startUpload()
	for dropped := false; !dropped; runtime.Gosched() {
		f.mu.Lock()
		dropped = f.stage == nil
		f.mu.Unlock()
	}
	d.mu.Unlock()
	r := <-opened
	if r.errno != 0 {
		t.Fatalf("open: %v", r.errno)
	}
	n, errno := f.Write(context.Background(), nil, []byte("hi"), 0)
	if errno != 0 || n != 2 {
		t.Fatalf("a write through a handle opened for writing: %d, %v (open flags %#x)", n, errno, r.flags)
	}
}

// TestCreateOverExistingFile: open(O_CREAT|O_APPEND) of a name the kernel
// holds a negative entry for (looked up before another writer made it)
// reaches Create, which finds the file: it opens it as it is (and
// O_CREAT|O_EXCL is EEXIST). Before, it replaced it with an empty file.
func TestCreateOverExistingFile(t *testing.T) {
	needFUSE(t)
	l := newLocal(t)
	c, dir, mt := mountOpts(t, l, l, Options{EntryTimeout: time.Minute, ListTTL: time.Nanosecond, FlushInterval: time.Hour})
	p := filepath.Join(dir, "log")
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Fatalf("stat before: %v", err)
	}
	// Another writer (the CLI, another mount) makes the file.
	if _, err := l.Apply(context.Background(), c, []dirs.Op{{Kind: "set", Name: "log", Data: []byte("kept;"), Mode: 0o644}}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "other")); !os.IsNotExist(err) {
		t.Fatalf("stat before: %v", err)
	}
	if _, err := l.Apply(context.Background(), c, []dirs.Op{{Kind: "set", Name: "other", Data: []byte("x"), Mode: 0o644}}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.OpenFile(filepath.Join(dir, "other"), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644); !errors.Is(err, os.ErrExist) {
		t.Fatalf("O_CREAT|O_EXCL of a file another writer made: %v, want EEXIST", err)
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("added")); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := mt.Unmount(); err != nil {
		t.Fatal(err)
	}
	if got, err := published(t, l, c, "log"); err != nil || got != "kept;added" {
		t.Fatalf("appended to an existing file with O_CREAT|O_APPEND: published %q (%v)", got, err)
	}
}

// TestTruncateUnlinkedOpenFile: a file unlinked while open (a temporary
// file's usual life) can be written, truncated and chmod-ed. Before,
// ftruncate and fchmod answered EROFS (no folder).
func TestTruncateUnlinkedOpenFile(t *testing.T) {
	needFUSE(t)
	l := newLocal(t)
	_, dir, _ := mountOpts(t, l, l, Options{FlushInterval: time.Hour})
	p := filepath.Join(dir, "tmp")
	f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write([]byte("scratch")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("S"), 0); err != nil {
		t.Fatalf("write after unlink: %v", err)
	}
	errT := f.Truncate(2)
	errC := f.Chmod(0o400)
	if errT != nil || errC != nil {
		t.Fatalf("on an open unlinked file: ftruncate: %v; fchmod: %v", errT, errC)
	}
}

// TestRmdirKeepsFilesItNeverSaw: rmdir finds the folder empty by the
// mount's view (a listing up to ListTTL old; the removal is published up
// to FlushInterval later); another writer puts a file into it meanwhile.
// The removal, published as "rmdir", leaves a folder that is not empty:
// their file stays. Before, an unconditional "remove" deleted it.
func TestRmdirKeepsFilesItNeverSaw(t *testing.T) {
	needFUSE(t)
	l := newLocal(t)
	c, dir, mt := mountOpts(t, l, l, Options{ListTTL: time.Hour, FlushInterval: time.Hour})
	if err := os.Mkdir(filepath.Join(dir, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if es, err := os.ReadDir(filepath.Join(dir, "d")); err != nil || len(es) != 0 {
		t.Fatalf("d: %v %v", es, err)
	}
	// Another writer puts a file in d.
	if _, err := l.Apply(context.Background(), c+"/d", []dirs.Op{{Kind: "set", Name: "theirs", Data: []byte("keep me"), Mode: 0o644}}); err != nil {
		t.Fatal(err)
	}
	rmErr := os.Remove(filepath.Join(dir, "d"))
	if err := mt.Unmount(); err != nil {
		t.Fatal(err)
	}
	if got, err := published(t, l, c, "d/theirs"); err != nil || got != "keep me" {
		t.Fatalf("rmdir answered %v; d/theirs, written by another writer, is now %q (%v)", rmErr, got, err)
	}
}

// gated is a store whose batch puts wait until gate is closed: a store
// slower than the writer (a remote daemon, a busy network).
type gated struct {
	*local
	gate chan struct{}
}

func (g *gated) PutFiles(ctx context.Context, files []*io.SectionReader) ([]string, error) {
	select {
	case <-g.gate:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return g.local.PutFiles(ctx, files)
}

// TestClosedFilesBacklogBounded: files written and closed faster than the
// store takes them (a cp -r of 1 MiB files into a slow store) are held in
// memory until uploaded; past maxBacklog a close waits for the uploads,
// and every file is published once the store takes them. Before, nothing
// made a writer wait: memory and goroutines grew by a file per file.
func TestClosedFilesBacklogBounded(t *testing.T) {
	needFUSE(t)
	l := newLocal(t)
	g := &gated{local: l, gate: make(chan struct{})}
	c, dir, mt := mountOpts(t, l, g, Options{FlushInterval: time.Hour})
	opened := false
	t.Cleanup(func() {
		if !opened {
			close(g.gate) // before the unmount
		}
	})
	var before, held runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	wrote := flood(t, dir)
	runtime.GC()
	runtime.ReadMemStats(&held)
	if grew := int64(held.HeapAlloc) - int64(before.HeapAlloc); grew > maxBacklog+24<<20 {
		t.Errorf("closed files waiting for the store: %d MiB more heap", grew>>20)
	}
	opened = true
	close(g.gate)
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	if err := mt.Unmount(); err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, floodFiles - 1} {
		if got, err := published(t, l, c, fmt.Sprintf("f%03d", i)); err != nil || got != string(floodData) {
			t.Fatalf("f%03d after the store took the files: %d bytes, %v", i, len(got), err)
		}
	}
}

// floodFiles of floodData: closed faster than a gated store takes them,
// they pass maxBacklog.
const floodFiles = maxBacklog/BatchFile + 16

var floodData = randstream.Bytes(3, BatchFile)

// flood writes floodFiles into dir on a goroutine, and returns once a
// close waits for the backlog; the channel gets the writer's end.
func flood(t *testing.T, dir string) chan error {
	t.Helper()
	wrote := make(chan error, 1)
	go func() {
		for i := range floodFiles {
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%03d", i)), floodData, 0o644); err != nil {
				wrote <- err
				return
			}
		}
		wrote <- nil
	}()
	for !blockedIn("(*backlog).wait") {
		select {
		case err := <-wrote:
			t.Fatalf("%d files of 1 MiB written and closed into a store that takes none: %v", floodFiles, err)
		default:
			runtime.Gosched()
		}
	}
	return wrote
}

// TestReadOnlyCloseDoesNotWaitForBacklog: while closes of written files
// wait for the backlog, a close of a file only read (nothing to upload)
// does not.
func TestReadOnlyCloseDoesNotWaitForBacklog(t *testing.T) {
	needFUSE(t)
	l := newLocal(t)
	g := &gated{local: l, gate: make(chan struct{})}
	_, dir, _ := mountOpts(t, l, g, Options{FlushInterval: time.Hour})
	if err := os.WriteFile(filepath.Join(dir, "r"), []byte("read me"), 0o644); err != nil {
		t.Fatal(err)
	}
	wrote := flood(t, dir)
	defer func() { // the writer ends before the unmount
		close(g.gate)
		if err := <-wrote; err != nil {
			t.Error(err)
		}
	}()
	readWithoutWaiting(t, filepath.Join(dir, "r"))
}

// readWithoutWaiting reads the file at p while a flood's close waits for
// the backlog: the read's close must not wait too.
func readWithoutWaiting(t *testing.T, p string) {
	t.Helper()
	read := make(chan error, 1)
	go func() { _, err := os.ReadFile(p); read <- err }()
	for {
		select {
		case err := <-read:
			if err != nil {
				t.Fatal(err)
			}
			return
		default:
		}
		if waiting := strings.Count(stacks(), "(*backlog).wait"); waiting >= 2 {
			t.Fatal("a close of a file only read waits for other files' uploads")
		}
		runtime.Gosched()
	}
}

// blockedIn reports whether some goroutine's stack holds fn.
func blockedIn(fn string) bool { return strings.Contains(stacks(), fn) }

// stacks is every goroutine's stack.
func stacks() string {
	buf := make([]byte, 4<<20)
	return string(buf[:runtime.Stack(buf, true)])
}

// rewriting is a store whose batch puts, the first rounds times, write to
// the open file w before answering: another process writing its file
// while each upload of it is in flight.
type rewriting struct {
	*local
	w      *os.File
	rounds int64
	puts   atomic.Int64
	done   atomic.Bool // no more writes (w is closing)
}

func (r *rewriting) PutFiles(ctx context.Context, files []*io.SectionReader) ([]string, error) {
	n := r.puts.Add(1) // one batch at a time here: g is the only file
	if n <= r.rounds && !r.done.Load() {
		if _, err := r.w.WriteAt([]byte{byte(n)}, 0); err != nil && !r.done.Load() {
			return nil, err
		}
	}
	return r.local.PutFiles(ctx, files)
}

// TestFsyncDoesNotWaitForOtherWriters: fsync of f uploads f and publishes
// its folder with what else is ready, without waiting for the upload of g,
// a file another process keeps writing (each upload of it finds it written
// again). Before, fsync waited for every staged file of the folder: it
// returned only once g's writer stopped, after 10 uploads of g.
func TestFsyncDoesNotWaitForOtherWriters(t *testing.T) {
	needFUSE(t)
	l := newLocal(t)
	r := &rewriting{local: l, rounds: 10}
	_, dir, _ := mountOpts(t, l, r, Options{FlushInterval: time.Hour})
	g, err := os.OpenFile(filepath.Join(dir, "g"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if _, err := g.Write(randstream.Bytes(5, 5000)); err != nil { // a batch upload
		t.Fatal(err)
	}
	r.w = g
	f, err := os.OpenFile(filepath.Join(dir, "f"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write([]byte("mine")); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	n := r.puts.Load()
	r.done.Store(true) // before g closes
	if n > 2 {
		t.Fatalf("fsync of f waited for %d uploads of g, a file another process was writing", n)
	}
}

// TestReadCloseOfFileWrittenElsewhereDoesNotWait: a process keeps a log
// open and has written to it; while closes of written files wait for the
// backlog (a store slower than the writers), another process reads the log
// and closes it: that close neither waits nor uploads the other's
// half-written content. Before, it did both.
func TestReadCloseOfFileWrittenElsewhereDoesNotWait(t *testing.T) {
	needFUSE(t)
	l := newLocal(t)
	g := &gated{local: l, gate: make(chan struct{})}
	_, dir, _ := mountOpts(t, l, g, Options{FlushInterval: time.Hour})
	log, err := os.OpenFile(filepath.Join(dir, "log"), os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := log.Write([]byte("a line\n")); err != nil {
		t.Fatal(err)
	}
	wrote := flood(t, dir)
	defer func() { // the writers end before the unmount
		close(g.gate)
		if err := <-wrote; err != nil {
			t.Error(err)
		}
		log.Close()
	}()
	readWithoutWaiting(t, filepath.Join(dir, "log"))
}

// TestReopenedFilesBacklogBounded: a writer writes each file in two
// opens (write 5000 bytes, close; open again, append to 1 MiB, close: as
// "echo header > f; cat body >> f") into a store that takes nothing. The
// second close counts the file's 1 MiB though the first upload is still
// in flight: past maxBacklog a close waits. Before, the backlog counted
// the size an upload started with, and 80 such files went through.
func TestReopenedFilesBacklogBounded(t *testing.T) {
	needFUSE(t)
	l := newLocal(t)
	g := &gated{local: l, gate: make(chan struct{})}
	_, dir, _ := mountOpts(t, l, g, Options{FlushInterval: time.Hour})
	const files = 80
	head := randstream.Bytes(7, 5000)
	body := randstream.Bytes(8, BatchFile-5000)
	var before, held runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	wrote := make(chan error, 1)
	go func() {
		for i := range files {
			p := filepath.Join(dir, fmt.Sprintf("r%03d", i))
			if err := os.WriteFile(p, head, 0o644); err != nil {
				wrote <- err
				return
			}
			f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				wrote <- err
				return
			}
			if _, err := f.Write(body); err != nil {
				f.Close()
				wrote <- err
				return
			}
			if err := f.Close(); err != nil {
				wrote <- err
				return
			}
		}
		wrote <- nil
	}()
	defer func() { // the writer ends before the unmount
		close(g.gate)
		<-wrote
	}()
	for !blockedIn("(*backlog).wait") {
		select {
		case err := <-wrote:
			wrote <- err
			runtime.GC()
			runtime.ReadMemStats(&held)
			t.Fatalf("%d files of 1 MiB written (each closed, reopened, appended to, closed) into a store that takes none, no close waited (%v); heap grew %d MiB (maxBacklog %d MiB)",
				files, err, (int64(held.HeapAlloc)-int64(before.HeapAlloc))>>20, maxBacklog>>20)
		default:
			runtime.Gosched()
		}
	}
}
