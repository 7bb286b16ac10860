package fuse

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/umbra-store/umbra/internal/dirs"
	"github.com/umbra-store/umbra/internal/kind"
)

// interrupting is a store whose Apply, once it has made a change to an
// entry named "moved", waits until the test has signalled the calling
// thread, then gives the interrupt a second to end its context, and
// answers with that error if it did: a reply lost to the interrupt after
// the change was made, as over the daemon's API. With fail set, it makes
// no such change and answers busy instead.
type interrupting struct {
	*local
	fail       bool
	failRemove atomic.Bool   // a publish that removes "a" fails, once
	published  chan struct{} // closed once "moved" is published
	signalled  chan struct{} // closed by the test once it sent the signal
	once       sync.Once
	canceled   atomic.Bool // the publish's context ended
}

func newInterrupting(l *local) *interrupting {
	return &interrupting{local: l, published: make(chan struct{}), signalled: make(chan struct{})}
}

func (s *interrupting) Apply(ctx context.Context, folder string, ops []dirs.Op) (map[string]string, error) {
	if len(ops) == 1 && ops[0].Kind == "remove" && ops[0].Name == "a" && s.failRemove.Load() {
		s.failRemove.Store(false)
		return nil, kind.New(kind.Busy, "test: busy")
	}
	if len(ops) != 1 || ops[0].Name != "moved" {
		return s.local.Apply(ctx, folder, ops)
	}
	first := false
	s.once.Do(func() { first = true })
	if !first {
		return s.local.Apply(ctx, folder, ops)
	}
	if s.fail {
		return nil, kind.New(kind.Busy, "test: busy")
	}
	made, err := s.local.Apply(ctx, folder, ops)
	close(s.published)
	if err != nil {
		return made, err
	}
	<-s.signalled
	select {
	case <-ctx.Done():
		s.canceled.Store(true)
		return nil, ctx.Err()
	case <-time.After(time.Second):
		return made, nil
	}
}

// mountForInterrupts mounts a new folder through s, with folders
// published only when asked (fsync, a rename across folders), and makes
// a/inside and b in it.
func mountForInterrupts(t *testing.T, l *local, s *interrupting) (string, string) {
	t.Helper()
	c, dir, _ := mountThrough(t, l, s, time.Hour)
	for _, d := range []string{"a", "a/inside", "b"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	fsyncDir(t, dir)
	return c, dir
}

// TestInterruptsDoNotStopChanges: a rename into another folder publishes
// the destination, then removes the source; a mkdir makes the folder. A
// signal to the calling thread once the change is made (the kernel then
// sends FUSE an INTERRUPT; Go's runtime signals its threads all the time)
// must not make the call fail: its retry (os.Rename and os.Mkdir retry on
// EINTR) would fail with ENOTEMPTY or EEXIST, a renamed folder in both
// places.
func TestInterruptsDoNotStopChanges(t *testing.T) {
	needFUSE(t)
	for _, c := range []struct {
		name   string
		change func(dir string) error
		want   string // a path that must exist after it
		gone   string // and one that must not, if any
	}{
		{"rename across folders", func(dir string) error {
			return os.Rename(filepath.Join(dir, "a"), filepath.Join(dir, "b", "moved"))
		}, "b/moved/inside", "a"},
		{"mkdir", func(dir string) error { return os.Mkdir(filepath.Join(dir, "b", "moved"), 0o755) }, "b/moved", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := newLocal(t)
			s := newInterrupting(l)
			_, dir := mountForInterrupts(t, l, s)
			tid := make(chan int, 1)
			done := make(chan error, 1)
			go func() {
				runtime.LockOSThread() // the thread the signal goes to
				defer runtime.UnlockOSThread()
				tid <- unix.Gettid()
				done <- c.change(dir)
			}()
			id := <-tid
			select {
			case <-s.published:
			case err := <-done:
				t.Fatalf("returned before publishing: %v", err)
			case <-time.After(30 * time.Second):
				t.Fatal("never published")
			}
			// SIGURG: Go's own preemption signal, handled and harmless here.
			err := unix.Tgkill(os.Getpid(), id, syscall.SIGURG)
			close(s.signalled)
			if err != nil {
				t.Fatal(err)
			}
			if err := <-done; err != nil {
				t.Fatalf("interrupted once its change was made: %v", err)
			}
			if s.canceled.Load() {
				t.Error("the interrupt reached the publish")
			}
			if _, err := os.Stat(filepath.Join(dir, c.want)); err != nil {
				t.Error(err)
			}
			if c.gone == "" {
				return
			}
			if _, err := os.Stat(filepath.Join(dir, c.gone)); !os.IsNotExist(err) {
				t.Errorf("%s: %v, want it gone", c.gone, err)
			}
		})
	}
}

// TestRenameAcrossFoldersUndoneOnFailure: when the destination cannot be
// published, the rename fails and is undone: the entry stays where it was,
// and is not published into the destination later.
func TestRenameAcrossFoldersUndoneOnFailure(t *testing.T) {
	needFUSE(t)
	l := newLocal(t)
	s := newInterrupting(l)
	s.fail = true
	c, dir := mountForInterrupts(t, l, s)
	err := os.Rename(filepath.Join(dir, "a"), filepath.Join(dir, "b", "moved"))
	if !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("rename with the destination unpublishable: %v, want EAGAIN", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "a", "inside")); err != nil {
		t.Errorf("the source after a failed rename: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "b", "moved")); !os.IsNotExist(err) {
		t.Errorf("the destination after a failed rename: %v", err)
	}
	fsyncDir(t, filepath.Join(dir, "b")) // what is pending in b is published
	checkStore(t, l, c, "a/inside", "b/moved")
}

// checkStore checks that the folder c (published) holds path have and
// not path lack.
func checkStore(t *testing.T, l *local, c, have, lack string) {
	t.Helper()
	if _, err := l.dirs.ListRefs(context.Background(), c+"/"+have); err != nil {
		t.Errorf("%s in the store: %v", have, err)
	}
	if _, err := l.dirs.ListRefs(context.Background(), c+"/"+lack); err == nil {
		t.Errorf("%s is in the store", lack)
	}
}

// TestRenameAcrossFoldersDoneWhenSourceFails: once the destination is
// published the rename has happened: a source that cannot be published
// then does not fail it, and loses the name at the next publish.
func TestRenameAcrossFoldersDoneWhenSourceFails(t *testing.T) {
	needFUSE(t)
	l := newLocal(t)
	s := newInterrupting(l)
	s.failRemove.Store(true)
	c, dir := mountForInterrupts(t, l, s)
	close(s.signalled) // no signal: the publish answers after its second
	if err := os.Rename(filepath.Join(dir, "a"), filepath.Join(dir, "b", "moved")); err != nil {
		t.Fatalf("rename whose source's publish failed: %v", err)
	}
	if s.failRemove.Load() {
		t.Fatal("the source's publish was not tried")
	}
	if _, err := os.Stat(filepath.Join(dir, "a")); !os.IsNotExist(err) {
		t.Errorf("the old name after the rename: %v", err)
	}
	fsyncDir(t, dir) // the next publish
	checkStore(t, l, c, "b/moved/inside", "a")
}

// TestMkdirOverPendingRemoval: a name removed and made again before the
// removal is published (rmdir x; mkdir x, or mv x x.old; mkdir x) is
// made: the removal goes with the mkdir, and the new folder stays.
func TestMkdirOverPendingRemoval(t *testing.T) {
	needFUSE(t)
	l := newLocal(t)
	c, dir := mountForInterrupts(t, l, newInterrupting(l))
	if err := os.Mkdir(filepath.Join(dir, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "x")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "x"), 0o755); err != nil {
		t.Fatalf("mkdir after rmdir: %v", err)
	}
	if err := os.Rename(filepath.Join(dir, "a"), filepath.Join(dir, "a.old")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "a"), 0o755); err != nil {
		t.Fatalf("mkdir after mv: %v", err)
	}
	fsyncDir(t, dir)
	for path, want := range map[string]int{"x": 0, "a": 0, "a.old": 1} {
		es, err := l.dirs.ListRefs(context.Background(), c+"/"+path)
		if err != nil || len(es) != want {
			t.Errorf("%s in the store: %d entries (%v), want %d", path, len(es), err, want)
		}
	}
}
