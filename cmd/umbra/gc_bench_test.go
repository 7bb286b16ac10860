package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/umbra-store/umbra/internal/config"
	"github.com/umbra-store/umbra/internal/randstream"
	"github.com/umbra-store/umbra/internal/testnet"
)

// BenchmarkGCStall5Nodes: 5 daemons hold a lasting 2 GiB file and a 3 GiB
// file whose leases have expired (over 1 GiB of expired shards on every
// node, sharing packs with the lasting file's). A get of the lasting file
// runs alone, then with `umbra gc` started on all five nodes at once when
// it has delivered 256 MiB, then alone, with a no-op `umbra gc` (nothing
// left to collect: the control), alone, and with a no-op again. Reported:
// the longest collection (GC and compaction) of a node, the most bytes one
// freed, and the get's rate over the stallWindow after the collections
// started, over its rate alone over the same stretch of the file (the
// stall) and over its rate beside the no-op collections.
func BenchmarkGCStall5Nodes(b *testing.B) {
	if testing.Short() {
		b.Skip("network benchmark skipped in -short")
	}
	for range b.N {
		dir := b.TempDir()
		initWithConfig(b, dir, 5, func(_ int, c *config.Config) { c.Leases.GCGrace, c.Leases.GCInterval = "1s", "1h" })
		st, err := testnet.Up(context.Background(), testnet.Options{Bin: umbraBin, Dir: dir, Nodes: 5})
		if err != nil {
			b.Fatal(err)
		}
		func() {
			defer testnet.Down(dir)
			owner, reader := st.Nodes[0].UmbraPath, st.Nodes[3].UmbraPath
			lastingFile, expiringFile := benchFile(b, dir, "lasting", 1, lastingSize), benchFile(b, dir, "expiring", 2, 3<<30)
			const expire = 90 * time.Second // longer than the puts take
			put := time.Now()
			runBench(b, owner, nil, "put", "--expire", expire.String(), expiringFile)
			lasting := strings.TrimSpace(runBench(b, owner, nil, "put", lastingFile))
			// The scenario is time passing: the expiry, then the grace;
			// and no DHT announcement left to run beside the gets.
			time.Sleep(time.Until(put.Add(expire + 5*time.Second)))
			settle(b, st.Nodes)
			// The get's rate alone is the median of three runs: before the
			// collections, after them, and between the two runs beside
			// collections with nothing left to collect (the control: what
			// starting the commands and the measure itself cost).
			var alone, noop []float64
			aloneGet := func() { alone = append(alone, timedGet(b, reader, lasting, nil).window()) }
			noopGet := func() {
				g := gcAll(b, st.Nodes)
				noop = append(noop, timedGet(b, reader, lasting, g.start).window())
				g.wait()
			}
			aloneGet()
			gcs := gcAll(b, st.Nodes)
			during := timedGet(b, reader, lasting, gcs.start).window()
			gcs.wait()
			// 3 GiB at 3+2 is 5 GiB of shards, a fifth on each node unless
			// placement passed one over (slow, or busy) for another.
			if gcs.freedTotal < 5<<30-5<<20 || gcs.freedMax < 1<<30 {
				b.Fatalf("the nodes collected %d bytes, at most %d on one", gcs.freedTotal, gcs.freedMax)
			}
			aloneGet()
			noopGet()
			aloneGet()
			noopGet()
			slices.Sort(alone)
			base, control := alone[1], (noop[0]+noop[1])/2
			b.ReportMetric(gcs.longest.Seconds(), "gc-longest-s")
			b.ReportMetric(float64(gcs.freedMax)/(1<<30), "gc-max-GiB/node")
			b.ReportMetric(base/1e6, "get-alone-MB/s")
			b.ReportMetric(during/base, "get-during-gc/alone")
			b.ReportMetric(control/base, "get-during-noop-gc/alone")
			b.ReportMetric(during/control, "get-during-gc/noop-gc")
		}()
	}
}

// stallWindow is how long after the collections start a get's rate is
// measured: as long as a collection of 1 GiB takes at least, the same
// whether the collections have work to do or not.
const stallWindow = 3 * time.Second

// lastingSize is the file the gets read: long enough for stallWindow.
const lastingSize = 2 << 30

// gcRun is `umbra gc` run on every node at once.
type gcRun struct {
	nodes      []testnet.Node
	b          *testing.B
	wg         sync.WaitGroup
	mu         sync.Mutex
	longest    time.Duration // the longest node's collection
	freedMax   int64         // bytes the node that freed most freed
	freedTotal int64
}

func gcAll(b *testing.B, nodes []testnet.Node) *gcRun {
	return &gcRun{nodes: nodes, b: b}
}

// start runs the collections.
func (g *gcRun) start() {
	for _, n := range g.nodes {
		g.wg.Go(func() {
			t := time.Now()
			out := runBench(g.b, n.UmbraPath, nil, "gc", "--json")
			d := time.Since(t)
			var gs struct {
				Bytes int64 `json:"bytes"`
			}
			if err := json.Unmarshal([]byte(out), &gs); err != nil {
				g.b.Errorf("gc --json: %v %q", err, out)
			}
			g.mu.Lock()
			defer g.mu.Unlock()
			g.longest = max(g.longest, d)
			g.freedMax = max(g.freedMax, gs.Bytes)
			g.freedTotal += gs.Bytes
		})
	}
}

// wait waits for the collections to end.
func (g *gcRun) wait() { g.wg.Wait() }

// benchFile writes n pseudo-random bytes (seed) to a file under dir,
// synced, and returns its path.
func benchFile(b *testing.B, dir, name string, seed byte, n int64) string {
	p := filepath.Join(dir, name)
	f, err := os.Create(p)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if _, err := io.Copy(f, randstream.New(seed, n)); err != nil {
		b.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
	return p
}

// runBench runs umbra with args as node and returns its standard output.
func runBench(b *testing.B, node string, stdout io.Writer, args ...string) string {
	var out, errb bytes.Buffer
	cmd := exec.Command(umbraBin, args...)
	cmd.Env = append(os.Environ(), "UMBRA_PATH="+node)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if stdout != nil {
		cmd.Stdout = stdout
	}
	if err := cmd.Run(); err != nil {
		b.Errorf("umbra %v: %v %s", args, err, errb.String())
	}
	return out.String()
}

// progress is when a get had delivered each MiB.
type progress []time.Time

// window is the bytes per second the get delivered over stallWindow from
// when it had delivered atBytes (when the collections started, if they
// ran).
func (p progress) window() float64 {
	const first = atBytes>>20 - 1 // p[first]: atBytes delivered
	if len(p) <= first+1 {
		return 0
	}
	end := p[first].Add(stallWindow)
	j := first
	for j+1 < len(p) && !p[j+1].After(end) {
		j++
	}
	if j == first {
		return 0
	}
	return float64(j-first) * (1 << 20) / p[j].Sub(p[first]).Seconds()
}

// atBytes is how much of the file a get delivers before the collections
// start.
const atBytes = 256 << 20

// progressWriter records when each MiB arrived, and calls at once
// atBytes have.
type progressWriter struct {
	n    int64
	p    progress
	at   func()
	once sync.Once
}

func (w *progressWriter) Write(b []byte) (int, error) {
	for range (w.n+int64(len(b)))>>20 - w.n>>20 {
		w.p = append(w.p, time.Now())
	}
	w.n += int64(len(b))
	if w.at != nil && w.n >= atBytes {
		w.once.Do(w.at)
	}
	return len(b), nil
}

// timedGet gets capText on node to a progressWriter, calling at once
// atBytes have arrived, and checks that the whole file came.
func timedGet(b *testing.B, node, capText string, at func()) progress {
	w := &progressWriter{at: at}
	runBench(b, node, w, "get", capText, "-o", "-")
	if w.n != lastingSize {
		b.Fatalf("get delivered %d bytes", w.n)
	}
	return w.p
}
