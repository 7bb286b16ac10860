package main

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/umbra-store/umbra/internal/randstream"
)

// The CLI is tested as a real binary: $UMBRA_BIN (make test builds it), or
// one built here.
var umbraBin string

func TestMain(m *testing.M) {
	if os.Getenv(asUmbraEnv) != "" {
		os.Exit(asUmbra())
	}
	if out := os.Getenv(rssHelperEnv); out != "" {
		os.Exit(rssHelper(out, os.Args[1], os.Args[2:]))
	}
	umbraBin = os.Getenv("UMBRA_BIN")
	if umbraBin == "" {
		dir, err := os.MkdirTemp("", "umbra-bin-")
		if err != nil {
			panic(err)
		}
		defer os.RemoveAll(dir)
		umbraBin = filepath.Join(dir, "umbra")
		out, err := exec.Command("go", "build", "-o", umbraBin, ".").CombinedOutput()
		if err != nil {
			panic("build umbra: " + err.Error() + "\n" + string(out))
		}
	}
	code := m.Run()
	os.Exit(code)
}

type result struct {
	stdout, stderr string
	code           int
}

// run runs umbra --offline with UMBRA_PATH=node and the given stdin: the
// single-node tests need no daemon.
func run(t *testing.T, node string, stdin io.Reader, args ...string) result {
	t.Helper()
	return runArgs(t, node, stdin, append([]string{"--offline"}, args...)...)
}

// runArgs runs umbra with exactly args.
func runArgs(t *testing.T, node string, stdin io.Reader, args ...string) result {
	t.Helper()
	return runDir(t, "", node, stdin, args...)
}

// runDir runs umbra with exactly args in the working directory wd ("": this
// one).
func runDir(t *testing.T, wd, node string, stdin io.Reader, args ...string) result {
	t.Helper()
	cmd := exec.Command(umbraBin, args...)
	cmd.Dir, cmd.Env = wd, append(os.Environ(), "UMBRA_PATH="+node)
	cmd.Stdin = stdin
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(r.stderr, "goroutine ") || strings.Contains(r.stderr, "panic:") {
		t.Fatalf("umbra %v crashed:\n%s", args, r.stderr)
	}
	return r
}

// rssHelperEnv makes the test binary a helper that runs one command
// (os.Args[1:]) with its own standard streams and writes the command's peak
// RSS in bytes to the file the variable names.
const rssHelperEnv = "UMBRA_TEST_RSS_OUT"

func rssHelper(out, bin string, args []string) int {
	cmd := exec.Command(bin, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		fmt.Fprintln(os.Stderr, "rss helper:", err)
		return 125
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		fmt.Fprintln(os.Stderr, "rss helper: no rusage on this system")
		return 125
	}
	if err := os.WriteFile(out, []byte(strconv.FormatInt(ru.Maxrss*1024, 10)), 0o600); err != nil {
		fmt.Fprintln(os.Stderr, "rss helper:", err)
		return 125
	}
	return code
}

// measured returns a command that runs umbra with args through a fresh
// copy of this test binary, and a function that, once the command has run,
// returns umbra's peak RSS in bytes.
// NB: os/exec starts a child with vfork, and Linux charges the child, when it
// execs, with the peak RSS of the memory it shared until then: the parent's.
// A test process that grew (64 MiB inputs, earlier -count runs) would spoil
// the rusage of every command it starts; the helper in between is small.
func measured(t *testing.T, node string, args ...string) (*exec.Cmd, func() int64) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "maxrss")
	cmd := exec.Command(os.Args[0], append([]string{umbraBin}, args...)...)
	cmd.Env = append(os.Environ(), "UMBRA_PATH="+node, rssHelperEnv+"="+out)
	return cmd, func() int64 {
		t.Helper()
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatalf("peak RSS of umbra %v: %v", args, err)
		}
		n, err := strconv.ParseInt(string(b), 10, 64)
		if err != nil {
			t.Fatalf("peak RSS of umbra %v: %v", args, err)
		}
		return n
	}
}

func mustRun(t *testing.T, node string, stdin io.Reader, args ...string) string {
	t.Helper()
	r := run(t, node, stdin, args...)
	if r.code != 0 {
		t.Fatalf("umbra %v: exit %d: %s", args, r.code, r.stderr)
	}
	return r.stdout
}

func newNode(t *testing.T) string {
	t.Helper()
	node := filepath.Join(t.TempDir(), "node")
	mustRun(t, node, nil, "init")
	return node
}

func writeFile(t *testing.T, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "input.bin")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestInit(t *testing.T) {
	node := filepath.Join(t.TempDir(), "node")
	out := mustRun(t, node, nil, "init")
	if !strings.Contains(out, node) {
		t.Fatalf("init output %q", out)
	}
	st, _ := os.Stat(node)
	if st.Mode().Perm() != 0o700 {
		t.Fatalf("node dir mode %o", st.Mode().Perm())
	}
	for _, f := range []string{"identity.key", "secret.key", "config.json"} {
		st, err := os.Stat(filepath.Join(node, f))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v", f, st, err)
		}
	}
	r := run(t, node, nil, "init")
	if r.code != 1 || !strings.Contains(r.stderr, "--force") || strings.Count(r.stderr, "\n") != 1 {
		t.Fatalf("second init: %d %q", r.code, r.stderr)
	}
	mustRun(t, node, nil, "init", "--force")
	// --path beats $UMBRA_PATH.
	other := filepath.Join(t.TempDir(), "other")
	mustRun(t, node, nil, "--path", other, "init")
	if _, err := os.Stat(filepath.Join(other, "secret.key")); err != nil {
		t.Fatal("--path ignored")
	}
}

func TestPutGetRoundTrip(t *testing.T) {
	node := newNode(t)
	data := randstream.Bytes(1, 5<<20+17)
	in := writeFile(t, data)
	r := run(t, node, nil, "put", in)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("put: %d %q", r.code, r.stderr)
	}
	capText := strings.TrimSpace(r.stdout)
	if !strings.HasPrefix(capText, "umbra:fr:") || strings.Count(r.stdout, "\n") != 1 {
		t.Fatalf("put printed %q", r.stdout)
	}
	// get CAP -o FILE (flags after the argument work too).
	outPath := filepath.Join(t.TempDir(), "copy.bin")
	r = run(t, node, nil, "get", capText, "-o", outPath)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("get: %d %q", r.code, r.stderr)
	}
	got, _ := os.ReadFile(outPath)
	if !bytes.Equal(got, data) {
		t.Fatal("get -o: content differs")
	}
	// get -o - to stdout.
	if out := mustRun(t, node, nil, "get", "-o", "-", capText); out != string(data) {
		t.Fatal("get -o -: content differs")
	}
	// get -o into a named pipe (or a device, as /dev/null): written in
	// place, the node left as it was (a temp file renamed over it would
	// have replaced it).
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	read := make(chan []byte, 1)
	go func() {
		f, err := os.Open(fifo)
		if err != nil {
			read <- nil
			return
		}
		defer f.Close()
		b, _ := io.ReadAll(f)
		read <- b
	}()
	mustRun(t, node, nil, "get", capText, "-o", fifo)
	if fi, err := os.Lstat(fifo); err != nil || fi.Mode().Type() != os.ModeNamedPipe {
		t.Fatalf("get -o FIFO replaced the pipe: %v", err)
	}
	if got := <-read; !bytes.Equal(got, data) {
		t.Fatalf("get -o FIFO: %d bytes read from the pipe", len(got))
	}
	// Without -o the stored name is used, in the working directory.
	wd := t.TempDir()
	cmd := exec.Command(umbraBin, "--offline", "get", capText)
	cmd.Dir, cmd.Env = wd, append(os.Environ(), "UMBRA_PATH="+node)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("get without -o: %v %s", err, out)
	}
	if got, _ := os.ReadFile(filepath.Join(wd, "input.bin")); !bytes.Equal(got, data) {
		t.Fatal("get without -o: content differs")
	}
	// put - reads stdin; same bytes, same secret, no name: converges on the
	// chunks, and reads back.
	capStdin := strings.TrimSpace(mustRun(t, node, bytes.NewReader(data), "put", "-"))
	if out := mustRun(t, node, nil, "get", capStdin, "-o", "-"); out != string(data) {
		t.Fatal("put -: content differs")
	}
	// --random-key and --shards.
	capRandom := strings.TrimSpace(mustRun(t, node, nil, "put", "--random-key", "--shards", "4+3", in))
	if out := mustRun(t, node, nil, "get", capRandom, "-o", "-"); out != string(data) {
		t.Fatal("random-key 4+3: content differs")
	}
	// cap verify attenuates, and is idempotent on a verify cap.
	vc := strings.TrimSpace(mustRun(t, node, nil, "cap", "verify", capText))
	if !strings.HasPrefix(vc, "umbra:fv:") || vc == capText {
		t.Fatalf("cap verify printed %q", vc)
	}
	if again := strings.TrimSpace(mustRun(t, node, nil, "cap", "verify", vc)); again != vc {
		t.Fatal("cap verify of a verify cap changed it")
	}
	// A verify cap cannot read.
	r = run(t, node, nil, "get", vc, "-o", "-")
	if r.code != 2 || r.stdout != "" || !strings.Contains(r.stderr, "file read capability") {
		t.Fatalf("get with a verify cap: %d %q", r.code, r.stderr)
	}
}

func TestBadInput(t *testing.T) {
	node := newNode(t)
	capText := strings.TrimSpace(mustRun(t, node, strings.NewReader("hello"), "put", "-"))
	dir := t.TempDir()
	file := writeFile(t, []byte("x"))
	typo := []byte(capText)
	typo[30] = map[bool]byte{true: 'b', false: 'a'}[typo[30] == 'a']
	otherNode := newNode(t)
	for _, c := range []struct {
		name string
		node string
		args []string
		code int
		want string
	}{
		{"missing file", node, []string{"put", filepath.Join(dir, "nope")}, 1, "no such file"},
		{"directory", node, []string{"put", dir}, 2, "is a directory"},
		{"not a directory", node, []string{"put", file + "/x"}, 1, "not a directory"},
		{"no args", node, []string{"put"}, 2, "one FILE"},
		{"malformed cap", node, []string{"get", "umbra:fr:abc", "-o", "-"}, 2, "truncated"},
		{"not a cap", node, []string{"get", "hello", "-o", "-"}, 2, "umbra:"},
		{"typo", node, []string{"get", string(typo), "-o", "-"}, 2, "mistyped"},
		{"data not present", otherNode, []string{"get", capText, "-o", "-"}, 3, "no such file"},
		{"bad shards", node, []string{"put", "--shards", "0+2", file}, 2, "K ≥ 1"},
		{"bad shards syntax", node, []string{"put", "--shards", "three", file}, 2, "K+M"},
		{"too many shards", node, []string{"put", "--shards", "200+57", file}, 2, "256"},
		{"unknown flag", node, []string{"put", "--frobnicate", file}, 2, "frobnicate"},
		{"not initialised", filepath.Join(dir, "empty"), []string{"put", file}, 1, "umbra init"},
		{"no name, no -o", node, []string{"get", capText}, 2, "-o FILE"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := run(t, c.node, nil, c.args...)
			if r.code != c.code || !strings.Contains(r.stderr, c.want) {
				t.Fatalf("exit %d (want %d), stderr %q (want %q)", r.code, c.code, r.stderr, c.want)
			}
			if strings.Count(r.stderr, "\n") != 1 || !strings.HasPrefix(r.stderr, "umbra: ") {
				t.Fatalf("stderr is not one line: %q", r.stderr)
			}
			if r.stdout != "" {
				t.Fatalf("stdout on failure: %q", r.stdout)
			}
		})
	}
	// A failed get leaves no file behind, and an existing file untouched.
	target := filepath.Join(dir, "keep.txt")
	os.WriteFile(target, []byte("precious"), 0o644)
	if r := run(t, otherNode, nil, "get", capText, "-o", target); r.code == 0 {
		t.Fatal("get of missing data succeeded")
	}
	if got, _ := os.ReadFile(target); string(got) != "precious" {
		t.Fatal("failed get clobbered the target")
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.Contains(e.Name(), ".umbra-") {
			t.Fatalf("temporary file left behind: %s", e.Name())
		}
	}
}

// TestNodeInUse holds a put open on a pipe and runs a second command on the
// same node directory: it is refused with a clear message.
func TestNodeInUse(t *testing.T) {
	node := newNode(t)
	pr, pw := io.Pipe()
	cmd := exec.Command(umbraBin, "--offline", "put", "-")
	cmd.Env = append(os.Environ(), "UMBRA_PATH="+node)
	cmd.Stdin = pr
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Once the first bytes are consumed, the store is open.
	if _, err := pw.Write(make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	r := run(t, node, strings.NewReader("x"), "put", "-")
	pw.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if r.code != 1 || !strings.Contains(r.stderr, "in use by another umbra process") {
		t.Fatalf("second process: %d %q", r.code, r.stderr)
	}
	if !strings.HasPrefix(out.String(), "umbra:fr:") {
		t.Fatal("first put did not finish")
	}
}

// TestNoPlaintextOnDisk stores a file of repeated recognisable text and scans
// every file in the node directory: no 32-byte window of the plaintext
// appears anywhere.
func TestNoPlaintextOnDisk(t *testing.T) {
	node := newNode(t)
	phrase := []byte("THE-QUICK-BROWN-FOX-JUMPS-OVER-THE-LAZY-DOG-umbra-plaintext-marker|")
	data := bytes.Repeat(phrase, (6<<20)/len(phrase))
	in := writeFile(t, data)
	for _, extra := range [][]string{nil, {"--random-key"}, {"--shards", "1+0"}} {
		mustRun(t, node, nil, append(append([]string{"put"}, extra...), in)...)
	}
	windows := map[[32]byte]bool{}
	for i := 0; i < len(phrase); i++ {
		var w [32]byte
		copy(w[:], data[i:i+32])
		windows[w] = true
	}
	scanned := 0
	err := filepath.Walk(node, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		raw, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		scanned += len(raw)
		// Every 32-byte window of the plaintext starts with one of the
		// phrase's bytes at a known phase: check each position cheaply by
		// its first 8 bytes before the full window.
		for i := 0; i+32 <= len(raw); i++ {
			var w [32]byte
			copy(w[:], raw[i:i+32])
			if windows[w] {
				t.Fatalf("%s holds plaintext at offset %d", p, i)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if scanned < 3*len(data) {
		t.Fatalf("scanned only %d bytes: where did the shards go?", scanned)
	}
}

// TestMemory2GiB stores and reads back a 2 GiB stream through the real
// binary and checks each process's peak RSS.
func TestMemory2GiB(t *testing.T) {
	if testing.Short() {
		t.Skip("2 GiB test skipped in -short")
	}
	node := newNode(t)
	const size = 2 << 30
	want := sha256.New()
	pr, pw := io.Pipe()
	go func() {
		src := randstream.New(9, size)
		buf := make([]byte, 1<<20)
		for n := 0; n < size; n += len(buf) {
			src.Read(buf)
			want.Write(buf)
			if _, err := pw.Write(buf); err != nil {
				return
			}
		}
		pw.Close()
	}()
	put, putRSS := measured(t, node, "--offline", "put", "-")
	put.Stdin = pr
	var out, errb bytes.Buffer
	put.Stdout, put.Stderr = &out, &errb
	if err := put.Run(); err != nil {
		t.Fatalf("put: %v %s", err, errb.String())
	}
	capText := strings.TrimSpace(out.String())
	get, getRSS := measured(t, node, "--offline", "get", capText, "-o", "-")
	got := sha256.New()
	get.Stdout = got
	errb.Reset()
	get.Stderr = &errb
	if err := get.Run(); err != nil {
		t.Fatalf("get: %v %s", err, errb.String())
	}
	if !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
		t.Fatal("2 GiB round trip differs")
	}
	putPeak, getPeak := putRSS(), getRSS()
	t.Logf("peak RSS: put %d MiB, get %d MiB (GOOS=%s)", putPeak>>20, getPeak>>20, runtime.GOOS)
	const limit = 200 << 20
	if putPeak > limit || getPeak > limit {
		t.Fatalf("peak RSS put %d MiB, get %d MiB: over 200 MiB", putPeak>>20, getPeak>>20)
	}
}
