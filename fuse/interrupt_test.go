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

// interrupting is a store whose Apply, once it has published an entry
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

// TestRenameAcrossFoldersIgnoresInterrupts: a rename into another folder
// publishes the destination, then removes the source. A signal to the
// renaming thread between the two (the kernel then sends FUSE an
// INTERRUPT; Go's runtime signals its threads all the time) must not stop
// it halfway: the caller's retry (os.Rename retries on EINTR) would find
// the destination taken and fail with ENOTEMPTY, the folder in both places.
func TestRenameAcrossFoldersIgnoresInterrupts(t *testing.T) {
	needFUSE(t)
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
	renamed := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // the thread the signal goes to
		defer runtime.UnlockOSThread()
		tid <- unix.Gettid()
		renamed <- os.Rename(filepath.Join(dir, "a"), filepath.Join(dir, "b", "moved"))
	}()
	id := <-tid
	select {
	case <-s.published:
	case err := <-renamed:
		t.Fatalf("the rename returned before publishing its destination: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the rename never published its destination")
	}
	// SIGURG: Go's own preemption signal, handled and harmless here.
	if err := unix.Tgkill(os.Getpid(), id, syscall.SIGURG); err != nil {
		t.Fatal(err)
	}
	if err := <-renamed; err != nil {
		t.Fatalf("rename, interrupted between its two steps: %v", err)
	}
	if s.canceled.Load() {
		t.Error("the interrupt reached the publish of the destination")
	}
	if _, err := os.Stat(filepath.Join(dir, "b", "moved", "inside")); err != nil {
		t.Errorf("the moved folder: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "a")); !os.IsNotExist(err) {
		t.Errorf("the old name is still there: %v", err)
	}
}
