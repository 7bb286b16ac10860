package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
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

// benchMount starts umbra mount for node and returns it once mounted and
// a stop that ends it (SIGTERM, waiting for the exit: everything written
// published) and returns the peak RSS, while mounted, of the process
// serving the mount (the daemon), and what it was when the mount began.
func benchMount(b *testing.B, node, ref, dir string, extra ...string) (stop func() (peak, before int64)) {
	b.Helper()
	args := append(append([]string{"mount", "--json"}, extra...), ref, dir)
	cmd := exec.Command(umbraBin, args...)
	cmd.Env = append(os.Environ(), "UMBRA_PATH="+node)
	out, _ := cmd.StdoutPipe()
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	var st mountStatus
	if err := json.Unmarshal([]byte(line), &st); err != nil {
		b.Fatalf("mount: %q %s", line, errb.String())
	}
	// From here: the daemon's peak so far (the put it stored) is reset.
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", st.PID), []byte("5"), 0); err != nil {
		b.Fatal(err)
	}
	before := procStatus(st.PID, "VmRSS:")
	return func() (int64, int64) {
		rss := peakRSS(st.PID)
		cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			b.Fatalf("mount exit: %v %s", err, errb.String())
		}
		fuse.Unmount(dir)
		return rss, before
	}
}

// readAll reads p with 1 MiB reads and returns how long it took.
func readAll(b *testing.B, p string) time.Duration {
	b.Helper()
	t := time.Now()
	f, err := os.Open(p)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if _, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{f}, make([]byte, 1<<20)); err != nil {
		b.Fatal(err)
	}
	return time.Since(t)
}

// BenchmarkMount5Nodes measures umbra mount on 5 daemons on 127.0.0.1: a
// 1 GiB file read through the mount on a node that never read it, beside
// umbra get of it on another such node in the same run; the same read
// again (warm); the first byte of a 100 MiB file through a new mount on a
// cold node; cp -r of 1,000 files of 16 KiB into a read-write mount until
// its unmount returns (everything published); the mount's peak RSS.
func BenchmarkMount5Nodes(b *testing.B) {
	if testing.Short() {
		b.Skip("network benchmark skipped in -short")
	}
	needFUSE(b)
	const size = 1 << 30
	for i := 0; i < b.N; i++ {
		dir := b.TempDir()
		st, err := testnet.Up(context.Background(), testnet.Options{Bin: umbraBin, Dir: dir, Nodes: 5})
		if err != nil {
			b.Fatal(err)
		}
		func() {
			defer testnet.Down(dir)
			put := func(seed byte, n int64, name string) string {
				cmd := exec.Command(umbraBin, "put", "--name", name, "-")
				cmd.Env = append(os.Environ(), "UMBRA_PATH="+st.Nodes[0].UmbraPath)
				cmd.Stdin = randstream.New(seed, n)
				out, err := cmd.Output()
				if err != nil {
					b.Fatal(err)
				}
				return strings.TrimSpace(string(out))
			}
			big, small := put(1, size, "big.bin"), put(2, 100<<20, "small.bin")
			// The get and the mount's read both run once the puts' DHT
			// announcements are over, not one beside them.
			settle(b, st.Nodes)
			get := exec.Command(umbraBin, "get", big, "-o", "-")
			get.Env = append(os.Environ(), "UMBRA_PATH="+st.Nodes[2].UmbraPath)
			pr, pw, _ := os.Pipe()
			get.Stdout = pw
			t := time.Now()
			get.Start()
			pw.Close()
			io.CopyBuffer(io.Discard, struct{ io.Reader }{pr}, make([]byte, 1<<20))
			if err := get.Wait(); err != nil {
				b.Fatal(err)
			}
			getT := time.Since(t)

			mnt := filepath.Join(dir, "mnt")
			os.Mkdir(mnt, 0o755)
			stop := benchMount(b, st.Nodes[3].UmbraPath, big, mnt)
			coldT := readAll(b, filepath.Join(mnt, "big.bin"))
			warmT := readAll(b, filepath.Join(mnt, "big.bin"))
			rss, base := stop()

			stop = benchMount(b, st.Nodes[4].UmbraPath, small, mnt)
			t = time.Now()
			f, err := os.Open(filepath.Join(mnt, "small.bin"))
			if err != nil {
				b.Fatal(err)
			}
			one := make([]byte, 1)
			if _, err := f.Read(one); err != nil {
				b.Fatal(err)
			}
			ttfb := time.Since(t)
			f.Close()
			stop()

			src := filepath.Join(dir, "src")
			os.Mkdir(src, 0o755)
			for j := 0; j < 1000; j++ {
				os.WriteFile(filepath.Join(src, fmt.Sprintf("f%04d", j)), randstream.Bytes(byte(j), 16<<10), 0o644)
			}
			n0 := st.Nodes[0].UmbraPath
			mk := exec.Command(umbraBin, "mkdir", "--alias", "rw")
			mk.Env = append(os.Environ(), "UMBRA_PATH="+n0)
			if out, err := mk.CombinedOutput(); err != nil {
				b.Fatalf("mkdir: %v %s", err, out)
			}
			stop = benchMount(b, n0, "rw:", mnt)
			t = time.Now()
			if out, err := exec.Command("cp", "-r", src, filepath.Join(mnt, "src")).CombinedOutput(); err != nil {
				b.Fatalf("cp -r: %v %s", err, out)
			}
			stop()
			cpT := time.Since(t)

			mbs := func(d time.Duration) float64 { return float64(size) / d.Seconds() / 1e6 }
			b.ReportMetric(mbs(getT), "get-MB/s")
			b.ReportMetric(mbs(coldT), "mount-read-MB/s")
			b.ReportMetric(mbs(coldT)/mbs(getT), "mount/get")
			b.ReportMetric(mbs(warmT), "mount-warm-MB/s")
			b.ReportMetric(float64(ttfb.Microseconds())/1000, "ttfb-ms")
			b.ReportMetric(1000/cpT.Seconds(), "cp-r-files/s")
			b.ReportMetric(float64(rss>>20), "mount-peak-RSS-MiB")
			b.ReportMetric(float64((rss-base)>>20), "mount-added-RSS-MiB")
		}()
	}
}
