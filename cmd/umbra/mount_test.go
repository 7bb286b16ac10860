package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/umbra-store/umbra/fuse"
	"github.com/umbra-store/umbra/internal/randstream"
	"github.com/umbra-store/umbra/internal/testnet"
)

// needFUSE skips, saying why, when /dev/fuse cannot be opened.
func needFUSE(t testing.TB) {
	t.Helper()
	f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no FUSE here: /dev/fuse: %v", err)
	}
	f.Close()
}

// mountProc is a running umbra mount.
type mountProc struct {
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	dir    string
	done   chan error
}

// startMount runs umbra mount --json ref dir for node (extra flags
// first) and returns once it is mounted; cleanup stops it.
func startMount(t *testing.T, node, ref, dir string, extra ...string) *mountProc {
	t.Helper()
	args := append(append([]string{"mount", "--json"}, extra...), ref, dir)
	cmd := exec.Command(umbraBin, args...)
	cmd.Env = append(os.Environ(), "UMBRA_PATH="+node)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	m := &mountProc{cmd: cmd, stderr: &bytes.Buffer{}, dir: dir, done: make(chan error, 1)}
	cmd.Stderr = m.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(out).ReadString('\n')
		line <- l
		io.Copy(io.Discard, out)
		m.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-m.done:
		case <-time.After(2 * time.Minute):
			_ = cmd.Process.Kill()
		}
		_ = fuse.Unmount(dir)
	})
	select {
	case l := <-line:
		var st mountStatus
		if err := json.Unmarshal([]byte(l), &st); err != nil || st.Dir != dir {
			t.Fatalf("mount did not start: %q %v\n%s", l, err, m.stderr)
		}
	case <-time.After(time.Minute):
		t.Fatalf("mount not ready after a minute:\n%s", m.stderr)
	}
	return m
}

// stop ends the mount with SIGTERM (as Ctrl-C) and waits for its exit:
// by then everything written is published.
func (m *mountProc) stop(t *testing.T) {
	t.Helper()
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-m.done:
		m.done <- err // for cleanup
		if err != nil {
			t.Fatalf("mount exited: %v\n%s", err, m.stderr)
		}
	case <-time.After(3 * time.Minute):
		t.Fatalf("mount did not exit:\n%s", m.stderr)
	}
}

func sha(t *testing.T, p string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// TestMountReadOnly: a folder put on node 0 of five, mounted read-only on
// node 3 with two nodes killed: every file hashes the same, diff -r finds
// nothing, writes fail with EROFS.
func TestMountReadOnly(t *testing.T) {
	needFUSE(t)
	st := up(t, testnet.Options{Nodes: 5})
	src := t.TempDir()
	makeTree(t, src, 300, 3)
	mustRunArgs(t, st.Nodes[0].UmbraPath, "mkdir", "--alias", "h")
	mustRunArgs(t, st.Nodes[0].UmbraPath, "put", "-r", src, "h:tree")
	shareTo(t, st.Nodes[0], st.Nodes[3], "h:tree", "t")
	kill(t, st.Nodes[0])
	kill(t, st.Nodes[1])
	dir := t.TempDir()
	startMount(t, st.Nodes[3].UmbraPath, "t:", dir)
	files := 0
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if sha(t, p) != sha(t, filepath.Join(dir, rel)) {
			t.Errorf("%q differs through the mount", rel)
		}
		files++
		return nil
	})
	if err != nil || files != 300 {
		t.Fatalf("%d files walked: %v", files, err)
	}
	if out, err := exec.Command("diff", "-r", src, dir).CombinedOutput(); err != nil {
		t.Fatalf("diff -r: %v\n%s", err, out)
	}
	err = os.WriteFile(filepath.Join(dir, "new"), []byte("x"), 0o644)
	if !errors.Is(err, syscall.EROFS) {
		t.Fatalf("a write to a read-only mount: %v", err)
	}
	if err := os.Mkdir(filepath.Join(dir, "d"), 0o755); !errors.Is(err, syscall.EROFS) {
		t.Fatalf("mkdir in a read-only mount: %v", err)
	}
}

// TestMountRandomReads: seeded reads of 4 KiB to 1 MiB at random offsets
// of a 1 GiB file, through a mount of its capability.
func TestMountRandomReads(t *testing.T) {
	needFUSE(t)
	if testing.Short() {
		t.Skip("1 GiB test skipped in -short")
	}
	node := newNode(t)
	const size = 1 << 30
	cmd := exec.Command(umbraBin, "--offline", "put", "--name", "big.bin", "-")
	cmd.Env = append(os.Environ(), "UMBRA_PATH="+node)
	cmd.Stdin = randstream.New(9, size)
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	startMount(t, node, strings.TrimSpace(string(out)), dir, "--offline")
	f, err := os.Open(filepath.Join(dir, "big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || st.Size() != size {
		t.Fatalf("size through the mount: %v", err)
	}
	r := rand.New(rand.NewPCG(9, 9))
	for i := 0; i < 200; i++ {
		n := 4<<10 + r.IntN(1<<20-4<<10)
		off := r.Int64N(size - int64(n))
		got := make([]byte, n)
		if _, err := f.ReadAt(got, off); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, randstream.At(9, off, n)) {
			t.Fatalf("read of %d bytes at %d differs", n, off)
		}
	}
}

// TestMountStaleCleared: a mount process killed with SIGKILL leaves its
// mount behind; the next mount of the same directory clears it and works,
// and unmount clears one too.
func TestMountStaleCleared(t *testing.T) {
	needFUSE(t)
	node := newNode(t)
	mustRun(t, node, nil, "mkdir", "--alias", "h")
	mustRun(t, node, nil, "put", writeFile(t, []byte("still here")), "h:f")
	dir := t.TempDir()
	for round := 0; round < 2; round++ {
		m := startMount(t, node, "h:", dir, "--offline")
		if err := m.cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		<-m.done
		m.done <- nil
		if _, err := os.Stat(filepath.Join(dir, "f")); !errors.Is(err, syscall.ENOTCONN) {
			t.Fatalf("after SIGKILL: %v (want a stale mount)", err)
		}
		if round == 1 {
			if r := runArgs(t, node, nil, "unmount", dir); r.code != 0 {
				t.Fatalf("unmount of a stale mount: %s", r.stderr)
			}
			if _, err := os.Stat(filepath.Join(dir, "f")); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("after unmount: %v", err)
			}
		}
	}
	m := startMount(t, node, "h:", dir, "--offline")
	if b, err := os.ReadFile(filepath.Join(dir, "f")); err != nil || string(b) != "still here" {
		t.Fatalf("after a stale mount: %q %v", b, err)
	}
	m.stop(t)
}

// run runs a command, failing the test with its output.
func runCmd(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

// sameContent fails unless b holds the names, kinds and bytes a holds.
func sameContent(t *testing.T, a, b string) {
	t.Helper()
	if out, err := exec.Command("diff", "-r", a, b).CombinedOutput(); err != nil {
		t.Fatalf("diff -r %s %s: %v\n%s", a, b, err, out)
	}
}

// TestMountReadWrite: cp -r a tree of 1,000 files into a read-write mount,
// rsync -a a second, tar x a third, rename and delete some; once the mount
// has stopped, another node's get -r of the folder is that tree exactly
// (modes and mtimes too where rsync and tar set them), and no node's disk
// (staging included) holds a window of plaintext.
func TestMountReadWrite(t *testing.T) {
	needFUSE(t)
	if _, err := exec.LookPath("rsync"); err != nil {
		t.Fatalf("rsync is needed (.ci/run installs it): %v", err)
	}
	st := up(t, testnet.Options{Nodes: 5})
	n0, n2 := st.Nodes[0], st.Nodes[2]
	mustRunArgs(t, n0.UmbraPath, "mkdir", "--alias", "rw")
	shareTo(t, n0, n2, "rw:", "rw")
	src := t.TempDir()
	for _, d := range []string{"one", "two", "three"} {
		os.Mkdir(filepath.Join(src, d), 0o755)
	}
	makeTree(t, filepath.Join(src, "one"), 1000, 4)
	makeTree(t, filepath.Join(src, "two"), 150, 5)
	makeTree(t, filepath.Join(src, "three"), 100, 6)
	phrase := []byte("MOUNT-PLAINTEXT-MARKER-the-lazy-dog-umbra|")
	marker := bytes.Repeat(phrase, 5000)
	os.WriteFile(filepath.Join(src, "one", "marker.txt"), marker, 0o644)
	archive := filepath.Join(t.TempDir(), "three.tar")
	runCmd(t, "tar", "cf", archive, "-C", filepath.Join(src, "three"), ".")

	mnt, want := t.TempDir(), t.TempDir()
	m := startMount(t, n0.UmbraPath, "rw:", mnt)
	for _, root := range []string{mnt, want} {
		runCmd(t, "cp", "-r", filepath.Join(src, "one"), filepath.Join(root, "one"))
		runCmd(t, "rsync", "-a", filepath.Join(src, "two")+"/", filepath.Join(root, "two")+"/")
		os.Mkdir(filepath.Join(root, "three"), 0o755)
		runCmd(t, "tar", "xf", archive, "-C", filepath.Join(root, "three"))
		// Renames within and across folders, deletions.
		ents, _ := os.ReadDir(filepath.Join(src, "one"))
		var files, dirs []string
		for _, e := range ents {
			if e.IsDir() {
				dirs = append(dirs, e.Name())
			} else if e.Name() != "marker.txt" {
				files = append(files, e.Name())
			}
		}
		for _, step := range []error{
			os.Rename(filepath.Join(root, "one", files[0]), filepath.Join(root, "one", "renamed")),
			os.Rename(filepath.Join(root, "one", files[1]), filepath.Join(root, "one", dirs[2], "moved here")),
			os.Rename(filepath.Join(root, "one", dirs[0]), filepath.Join(root, "one", dirs[2], "moved folder")),
			os.Remove(filepath.Join(root, "one", files[2])),
			os.RemoveAll(filepath.Join(root, "one", dirs[1])),
		} {
			if step != nil {
				t.Fatalf("in %s: %v", root, step)
			}
		}
	}
	sameContent(t, want, mnt) // as seen through the mount, before publishing
	m.stop(t)

	got := filepath.Join(t.TempDir(), "got")
	if r := runArgs(t, n2.UmbraPath, nil, "get", "-r", "rw:", "-o", got); r.code != 0 {
		t.Fatalf("get -r on node 2: %s", r.stderr)
	}
	sameContent(t, want, got)
	sameTree(t, filepath.Join(want, "two"), filepath.Join(got, "two"))
	sameTree(t, filepath.Join(want, "three"), filepath.Join(got, "three"))

	windows := map[[32]byte]bool{}
	for i := 0; i < len(phrase); i++ {
		windows[[32]byte(marker[i:i+32])] = true
	}
	for _, n := range st.Nodes {
		filepath.WalkDir(n.UmbraPath, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return nil
			}
			raw, _ := os.ReadFile(p)
			for i := 0; i+32 <= len(raw); i++ {
				if windows[[32]byte(raw[i:i+32])] {
					t.Errorf("%s holds plaintext at %d", p, i)
					break
				}
			}
			return nil
		})
	}
}
