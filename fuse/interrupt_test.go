package fuse

import (
	"context"
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
)

// interrupting is a store whose Apply, once it has made a change to an entry
// named "moved", waits for its context to end (an interrupt) before it
// answers, and then answers with that error: a reply lost to the interrupt
// after the change was made, as over the daemon's API.
type interrupting struct {
	*local
	published chan struct{} // closed once "moved" is published
	once      sync.Once
	canceled  atomic.Bool // the publish's context ended
}

func (s *interrupting) Apply(ctx context.Context, folder string, ops []dirs.Op) (map[string]string, error) {
	made, err := s.local.Apply(ctx, folder, ops)
	if err != nil || len(ops) != 1 || ops[0].Name != "moved" {
		return made, err
	}
	first := false
	s.once.Do(func() { first = true; close(s.published) })
	if !first {
		return made, nil
	}
	select {
	case <-ctx.Done():
		s.canceled.Store(true)
		return nil, ctx.Err()
	case <-time.After(time.Second):
		return made, nil
	}
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
		gone   string // and one that must not
	}{
		{"rename across folders", func(dir string) error {
			return os.Rename(filepath.Join(dir, "a"), filepath.Join(dir, "b", "moved"))
		}, "b/moved/inside", "a"},
		{"mkdir", func(dir string) error { return os.Mkdir(filepath.Join(dir, "moved"), 0o755) }, "moved", "nothing"},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := newLocal(t)
			s := &interrupting{local: l, published: make(chan struct{})}
			_, dir, _ := mountThrough(t, l, s)
			for _, d := range []string{"a", "a/inside", "b"} {
				if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			fsyncDir(t, dir)
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
			if err := unix.Tgkill(os.Getpid(), id, syscall.SIGURG); err != nil {
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
			if _, err := os.Stat(filepath.Join(dir, c.gone)); !os.IsNotExist(err) {
				t.Errorf("%s: %v, want it gone", c.gone, err)
			}
		})
	}
}
