package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/umbra-store/umbra/internal/randstream"
	"github.com/umbra-store/umbra/internal/testnet"
)

// BenchmarkFolders5Nodes measures folders on 5 daemons on 127.0.0.1: put
// -r of 10,000 files of 4 KiB into one folder until durable, get -r of it on
// another node, ls -l of it on a node that has not read it, one put into
// it, and resolving a path five folders deep on a node that has not read
// it. Each figure includes starting the CLI process.
func BenchmarkFolders5Nodes(b *testing.B) {
	if testing.Short() {
		b.Skip("network benchmark skipped in -short")
	}
	const files = 10000
	for i := 0; i < b.N; i++ {
		dir := b.TempDir()
		st, err := testnet.Up(context.Background(), testnet.Options{Bin: umbraBin, Dir: dir, Nodes: 5})
		if err != nil {
			b.Fatal(err)
		}
		func() {
			defer testnet.Down(dir)
			src := filepath.Join(dir, "src")
			os.Mkdir(src, 0o755)
			for j := 0; j < files; j++ {
				if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("file-%05d", j)), randstream.Bytes(byte(j), 4096), 0o644); err != nil {
					b.Fatal(err)
				}
			}
			run := func(n testnet.Node, stdin string, args ...string) (string, time.Duration) {
				cmd := exec.Command(umbraBin, args...)
				cmd.Env = append(os.Environ(), "UMBRA_PATH="+n.UmbraPath)
				cmd.Stdin = strings.NewReader(stdin)
				var out, errb bytes.Buffer
				cmd.Stdout, cmd.Stderr = &out, &errb
				t := time.Now()
				if err := cmd.Run(); err != nil {
					b.Fatalf("umbra %v: %v %s", args, err, errb.String())
				}
				return out.String(), time.Since(t)
			}
			n0 := st.Nodes[0]
			run(n0, "", "mkdir", "--alias", "home")
			rc, _ := run(n0, "", "share", "home:")
			for _, n := range st.Nodes[1:] {
				run(n, rc, "alias", "add", "home")
			}
			_, putT := run(n0, "", "put", "-r", src, "home:big")
			// get -r to the disk the test runs on, and to a tmpfs (umbra's
			// own cost, without this VM's disk, whose file creation rate
			// varies tenfold from run to run).
			// The put's write-back (all five nodes share this disk) ends
			// first: a reader on another machine would not wait for it.
			syscall.Sync()
			_, getT := run(st.Nodes[3], "", "get", "-r", "home:big", "-o", filepath.Join(dir, "got"))
			var getShmT time.Duration
			if shm, err := os.MkdirTemp("/dev/shm", "umbra-bench-"); err == nil {
				_, getShmT = run(st.Nodes[1], "", "get", "-r", "home:big", "-o", filepath.Join(shm, "got"))
				os.RemoveAll(shm)
			}
			ls, lsT := run(st.Nodes[4], "", "ls", "-l", "home:big")
			if n := strings.Count(ls, "\n"); n != files {
				b.Fatalf("ls lists %d", n)
			}
			one := filepath.Join(dir, "one")
			os.WriteFile(one, []byte("one more"), 0o644)
			_, put1T := run(n0, "", "put", one, "home:big/one-more")
			run(n0, "", "mkdir", "-p", "home:a/b/c/d/e")
			run(n0, "", "put", one, "home:a/b/c/d/e/x")
			deep, deepT := run(st.Nodes[2], "", "ls", "home:a/b/c/d/e")
			if strings.TrimSpace(deep) != "x" {
				b.Fatalf("deep ls: %q", deep)
			}
			_, startT := run(st.Nodes[2], "", "alias", "list")
			b.ReportMetric(files/putT.Seconds(), "put-r-files/s")
			b.ReportMetric(files/getT.Seconds(), "get-r-files/s")
			if getShmT > 0 {
				b.ReportMetric(files/getShmT.Seconds(), "get-r-tmpfs-files/s")
			}
			b.ReportMetric(float64(lsT.Milliseconds()), "ls-l-10k-cold-ms")
			b.ReportMetric(float64(put1T.Milliseconds()), "put-into-10k-ms")
			b.ReportMetric(float64(deepT.Milliseconds()), "resolve-depth5-cold-ms")
			b.ReportMetric(float64(startT.Milliseconds()), "cli-start-ms")
		}()
	}
}
