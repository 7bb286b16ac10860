package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/umbra-store/umbra/internal/randstream"
	"github.com/umbra-store/umbra/internal/testnet"
)

// cpuSeconds sums the CPU time (user and system) the processes used so
// far; a process gone counts nothing.
func cpuSeconds(pids ...int) float64 {
	var ticks int64
	for _, pid := range pids {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// Fields after the command name (which may hold spaces): utime and
		// stime are the 12th and 13th.
		f := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+1:]))
		if len(f) > 12 {
			u, _ := strconv.ParseInt(f[11], 10, 64)
			s, _ := strconv.ParseInt(f[12], 10, 64)
			ticks += u + s
		}
	}
	return float64(ticks) / 100 // USER_HZ
}

// peakRSS reads a process's peak resident set (VmHWM), in bytes.
func peakRSS(pid int) int64 { return procStatus(pid, "VmHWM:") }

// procStatus reads a size field of /proc/PID/status (in kB there), in bytes.
func procStatus(pid int, field string) int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(raw), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == field {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// BenchmarkNetwork5Nodes1GiB runs 5 daemons on 127.0.0.1 and measures, on a
// 1 GiB random file at 3+2: put until every shard is durable on its peer,
// get with all nodes up, get with two holders killed (SIGKILL), and the peak
// RSS of each daemon; and the CPU the daemons spend announcing the put's
// blocks on the DHT after it (the gets run once that is over).
func BenchmarkNetwork5Nodes1GiB(b *testing.B) {
	if testing.Short() {
		b.Skip("network benchmark skipped in -short")
	}
	const size = 1 << 30
	for i := 0; i < b.N; i++ {
		dir := b.TempDir()
		st, err := testnet.Up(context.Background(), testnet.Options{Bin: umbraBin, Dir: dir, Nodes: 5})
		if err != nil {
			b.Fatal(err)
		}
		func() {
			defer testnet.Down(dir)
			// The file to store is written first: put reads a file, as a
			// user's would be, from the page cache.
			src := filepath.Join(dir, "src")
			f, err := os.Create(src)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.Copy(f, randstream.New(1, size)); err != nil {
				b.Fatal(err)
			}
			// On disk before the clock starts, as a user's file would be:
			// its write-back must not compete with the put.
			if err := f.Sync(); err != nil {
				b.Fatal(err)
			}
			f.Close()
			var pids []int
			for _, n := range st.Nodes {
				pids = append(pids, n.PID)
			}
			// cpu is the CPU time of the last run: its command and every
			// daemon; stderr its standard error.
			var cpu float64
			var stderr []byte
			run := func(node string, stdout io.Writer, args ...string) time.Duration {
				before := cpuSeconds(pids...)
				cmd := exec.Command(umbraBin, args...)
				cmd.Env = append(os.Environ(), "UMBRA_PATH="+node)
				var errb bytes.Buffer
				cmd.Stderr = &errb
				// Standard output is a pipe read 1 MiB at a time, as a
				// consumer that keeps up would (exec's own copy reads 32 KiB
				// and costs more than umbra's writes on this VM).
				pr, pw, err := os.Pipe()
				if err != nil {
					b.Fatal(err)
				}
				cmd.Stdout = pw
				copied := make(chan error, 1)
				go func() {
					_, err := io.CopyBuffer(struct{ io.Writer }{stdout}, struct{ io.Reader }{pr}, make([]byte, 1<<20))
					pr.Close()
					copied <- err
				}()
				t := time.Now()
				err = cmd.Start()
				pw.Close()
				if err == nil {
					err = cmd.Wait()
				}
				if cerr := <-copied; err == nil {
					err = cerr
				}
				if err != nil {
					b.Fatalf("umbra %v: %v %s", args, err, errb.String())
				}
				d := time.Since(t)
				cpu = cpuSeconds(pids...) - before + (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
				stderr = errb.Bytes()
				return d
			}
			var capOut bytes.Buffer
			putT := run(st.Nodes[0].UmbraPath, &capOut, "put", src)
			putCPU := cpu
			capText := strings.TrimSpace(capOut.String())
			// The put has returned; its blocks are announced on the DHT
			// after it, by every holder. Their cost is the put's too, and
			// the gets are measured once it is over, not beside it.
			before := cpuSeconds(pids...)
			t0 := time.Now()
			settle(b, st.Nodes)
			announceT, announceCPU := time.Since(t0), cpuSeconds(pids...)-before
			// CRC-32C, not SHA-256: the check must cost little next to the
			// transfer it runs beside.
			want := crc32.New(crc32.MakeTable(crc32.Castagnoli))
			io.Copy(want, randstream.New(1, size))
			got := crc32.New(crc32.MakeTable(crc32.Castagnoli))
			getT := run(st.Nodes[2].UmbraPath, got, "get", "--json", capText, "-o", "-")
			if !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
				b.Fatal("get differs")
			}
			getCPU := cpu
			var gr getResult
			if err := json.Unmarshal(stderr, &gr); err != nil {
				b.Fatalf("get --json: %v %q", err, stderr)
			}
			// The same get into /dev/null: umbra without a consumer, whose
			// copies out of the pipe share the two cores with the get.
			nullT := run(st.Nodes[2].UmbraPath, io.Discard, "get", capText, "-o", os.DevNull)
			nullCPU := cpu
			var rss int64
			for _, n := range st.Nodes {
				rss = max(rss, peakRSS(n.PID))
			}
			smallPut, smallGet := smallFiles(b, dir, st.Nodes[0].UmbraPath, st.Nodes[3].UmbraPath, run)
			settle(b, st.Nodes)
			syscall.Kill(st.Nodes[0].PID, syscall.SIGKILL)
			syscall.Kill(st.Nodes[1].PID, syscall.SIGKILL)
			pids = pids[2:]
			got.Reset()
			get2T := run(st.Nodes[2].UmbraPath, got, "get", capText, "-o", "-")
			if !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
				b.Fatal("get with two nodes down differs")
			}
			get2CPU := cpu
			for _, n := range st.Nodes[2:] {
				rss = max(rss, peakRSS(n.PID))
			}
			mbs := func(d time.Duration) float64 { return float64(size) / d.Seconds() / 1e6 }
			b.ReportMetric(mbs(putT), "put-MB/s")
			b.ReportMetric(mbs(getT), "get-MB/s")
			b.ReportMetric(mbs(get2T), "get2down-MB/s")
			b.ReportMetric(float64(rss>>20), "daemon-peak-RSS-MiB")
			b.ReportMetric(putCPU, "put-cpu-s/GiB")
			b.ReportMetric(announceCPU, "announce-cpu-s/GiB")
			b.ReportMetric(announceT.Seconds(), "announce-s")
			b.ReportMetric(getCPU, "get-cpu-s/GiB")
			b.ReportMetric(get2CPU, "get2down-cpu-s/GiB")
			b.ReportMetric(mbs(nullT), "get-devnull-MB/s")
			b.ReportMetric(nullCPU, "get-devnull-cpu-s/GiB")
			b.ReportMetric(gr.Stats.OverK, "get-shards/needed")
			b.ReportMetric(smallPut, "small-put-ms")
			b.ReportMetric(smallGet, "small-get-ms")
		}()
	}
}

// settle waits until no node has a block left to announce on the DHT.
func settle(b *testing.B, nodes []testnet.Node) {
	b.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for _, n := range nodes {
		for {
			var st struct {
				Announcing int `json:"announcing"`
			}
			out, err := exec.Command(umbraBin, "--path", n.UmbraPath, "status", "--json").Output()
			if err != nil || json.Unmarshal(out, &st) != nil {
				b.Fatalf("status: %v %q", err, out)
			}
			if st.Announcing == 0 {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("%s still announces %d blocks", n.UmbraPath, st.Announcing)
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
}

// smallFiles puts 21 files of 4 KiB, one at a time through the CLI
// (process start included), on node from, gets each on node to, checks
// them, and returns the median milliseconds of a put and of a get.
func smallFiles(b *testing.B, dir, from, to string, run func(node string, stdout io.Writer, args ...string) time.Duration) (put, get float64) {
	b.Helper()
	var puts, gets []time.Duration
	for j := range 21 {
		want := randstream.Bytes(byte(100+j), 4096)
		p := filepath.Join(dir, fmt.Sprintf("small-%02d", j))
		if err := os.WriteFile(p, want, 0o644); err != nil {
			b.Fatal(err)
		}
		var ref, got bytes.Buffer
		puts = append(puts, run(from, &ref, "put", p))
		gets = append(gets, run(to, &got, "get", strings.TrimSpace(ref.String()), "-o", "-"))
		if !bytes.Equal(got.Bytes(), want) {
			b.Fatalf("small file %d read back wrong", j)
		}
	}
	median := func(ds []time.Duration) float64 {
		slices.Sort(ds)
		return float64(ds[len(ds)/2].Microseconds()) / 1000
	}
	return median(puts), median(gets)
}
