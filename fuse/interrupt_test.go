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
	fail      bool
	published chan struct{} // closed once "moved" is published
	signalled chan struct{} // closed by the test once it sent the signal
	once      sync.Once
	canceled  atomic.Bool // the publish's context ended
}

func newInterrupting(l *local) *interrupting {
	return &interrupting{local: l, published: make(chan struct{}), signalled: make(chan struct{})}
}

func (s *interrupting) Apply(ctx context.Context, folder string, ops []dirs.Op) (map[string]string, error) {
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
	if _, err := l.dirs.ListRefs(context.Background(), c+"/b/moved"); err == nil {
		t.Error("the failed rename's destination was published later")
	}
	if _, err := l.dirs.ListRefs(context.Background(), c+"/a/inside"); err != nil {
		t.Errorf("the source in the store: %v", err)
	}
}
