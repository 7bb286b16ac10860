package main

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/umbra-store/umbra/internal/testnet"
)

// waitExit waits for a mount process to end and fails unless it ended
// as want says (nil: cleanly).
func (m *mountProc) waitExit(t *testing.T, clean bool) {
	t.Helper()
	select {
	case err := <-m.done:
		m.done <- err // for cleanup
		if clean && err != nil {
			t.Fatalf("mount exited: %v\n%s", err, m.stderr)
		}
	case <-time.After(2 * time.Minute):
		t.Fatalf("mount did not exit:\n%s", m.stderr)
	}
}

func readBack(t *testing.T, node, path, want string) {
	t.Helper()
	if got := mustRunArgs(t, node, "get", "-o", "-", path); got != want {
		t.Fatalf("get %s: %q, want %q", path, got, want)
	}
}

// TestDaemonMountLifecycle: the daemon serves a drive umbra mount asks
// for. A mount process killed with SIGKILL leaves no stale mount: the
// daemon publishes what was written and unmounts, and the next mount of
// the directory works at once. umbra unmount ends a daemon's drive (its
// mount process exits cleanly), and so does the daemon stopping; each
// time what was written is published.
func TestDaemonMountLifecycle(t *testing.T) {
	needFUSE(t)
	st := up(t, testnet.Options{Nodes: 5})
	n0 := st.Nodes[0].UmbraPath
	mustRunArgs(t, n0, "mkdir", "--alias", "rw")
	shareTo(t, st.Nodes[0], st.Nodes[1], "rw:", "r")
	dir := t.TempDir()
	write := func(name, data string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	m := startMount(t, n0, "rw:", dir)
	write("a", "alpha")
	if err := m.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	m.waitExit(t, false)
	m = startMount(t, n0, "rw:", dir) // waits for the first one's unmount
	if b, err := os.ReadFile(filepath.Join(dir, "a")); err != nil || string(b) != "alpha" {
		t.Fatalf("after the mount process was killed: %q %v", b, err)
	}
	readBack(t, n0, "rw:a", "alpha")

	write("b", "beta")
	// In use: the unmount is refused, nothing published, the drive works.
	held, err := os.Open(filepath.Join(dir, "b"))
	if err != nil {
		t.Fatal(err)
	}
	if r := runArgs(t, n0, nil, "unmount", dir); r.code == 0 || !strings.Contains(r.stderr, "in use") {
		t.Fatalf("unmount of a drive in use: exit %d: %s", r.code, r.stderr)
	}
	if b, err := io.ReadAll(held); err != nil || string(b) != "beta" {
		t.Fatalf("after a refused unmount: %q %v", b, err)
	}
	held.Close()
	// Named through a symbolic link, the same drive.
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	mustRunArgs(t, n0, "unmount", link)
	m.waitExit(t, true)
	readBack(t, n0, "rw:b", "beta")
	if r := runArgs(t, n0, nil, "mount", "rw:", filepath.Join(n0, "staging")); r.code == 0 || !strings.Contains(r.stderr, "node directory") {
		t.Fatalf("a mount inside the node directory: exit %d: %s", r.code, r.stderr)
	}

	m = startMount(t, n0, "rw:", dir)
	write("c", "gamma")
	if err := syscall.Kill(st.Nodes[0].PID, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	m.waitExit(t, true)
	if _, err := os.Stat(filepath.Join(dir, "c")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("after the daemon stopped, the directory still shows the drive: %v", err)
	}
	readBack(t, st.Nodes[1].UmbraPath, "r:c", "gamma")
}
