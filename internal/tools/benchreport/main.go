// Command benchreport reads `go test -bench` output on stdin and prints the
// local put/get throughput beside the raw AES-256-GCM, SHA-256, BLAKE3,
// page-cache write and Reed-Solomon throughput measured in the same run,
// with ratios. make bench runs it.
package main

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
)

func main() {
	mbs := map[string]float64{}
	metric := map[string]float64{} // custom b.ReportMetric units
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		name := strings.TrimPrefix(f[0], "Benchmark")
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			name = name[:i]
		}
		for i := 1; i+1 < len(f); i++ {
			if v, err := strconv.ParseFloat(f[i], 64); err == nil && f[i+1] != "MB/s" && f[i+1] != "ns/op" {
				metric[name+" "+f[i+1]] = v
			}
			if f[i+1] == "MB/s" {
				if v, err := strconv.ParseFloat(f[i], 64); err == nil {
					mbs[name] = max(mbs[name], v) // the longer raw run wins
				}
			}
		}
	}
	put, get := mbs["LocalPut1GiB"], mbs["LocalGet1GiB"]
	aes, sha, b3, rs := mbs["RawAES256GCM1M"], mbs["RawSHA256_1M"], mbs["RawBLAKE3_1M"], mbs["RawRSEncode3x2x1M"]
	pcw, dsk := mbs["RawPageCacheWrite1GiB"], mbs["RawDiskWrite1GiB"]
	if put == 0 || get == 0 || aes == 0 || sha == 0 || b3 == 0 || rs == 0 || pcw == 0 || dsk == 0 {
		fmt.Fprintln(os.Stderr, "benchreport: missing benchmark results")
		os.Exit(1)
	}
	// Put hashes every plaintext byte once (convergent key) and every shard
	// byte once (CIDs): 1 + 5/3 BLAKE3 passes at 3+2, and writes 5/3 of
	// the file into the page cache. With 2 cores those alone cap put at
	// 2 / ((1+5/3)/b3 + (5/3)/pcw).
	hashCap := 2 / ((1+5.0/3)/b3 + (5.0/3)/pcw)
	// And it is durable only once those 5/3 are on the disk: offline all on
	// this node, over the loopback testnet spread over five daemons that
	// share this one disk.
	diskCap := dsk * 3 / 5
	fmt.Println()
	fmt.Println("umbra local throughput, 1 GiB random file, 3+2, this machine, one run")
	fmt.Printf("  %-28s %8.0f MB/s   goal ≥ 700\n", "local put", put)
	fmt.Printf("  %-28s %8.0f MB/s   goal ≥ 2500 (to /dev/null)\n", "local get", get)
	fmt.Println("raw primitives, one core, same run")
	fmt.Printf("  %-28s %8.0f MB/s\n", "AES-256-GCM seal", aes)
	fmt.Printf("  %-28s %8.0f MB/s   (manifest nodes, capabilities)\n", "SHA-256", sha)
	fmt.Printf("  %-28s %8.0f MB/s   (shard CIDs, convergent keys)\n", "BLAKE3", b3)
	fmt.Printf("  %-28s %8.0f MB/s   (1 GiB into a new file, no sync)\n", "page-cache write", pcw)
	fmt.Printf("  %-28s %8.0f MB/s   (1 GiB into a new file, then fdatasync)\n", "disk write", dsk)
	fmt.Printf("  %-28s %8.0f MB/s\n", "Reed-Solomon encode 3+2", rs)
	fmt.Println("ratios")
	fmt.Printf("  %-28s %8.2f   (hashing and page-cache writes alone allow %.0f MB/s on 2 cores)\n", "put / hash+write ceiling", put/hashCap, hashCap)
	fmt.Printf("  %-28s %8.2f   (a put writes 5/3 of its file and syncs it: the disk allows %.0f MB/s)\n", "put / disk ceiling", put/diskCap, diskCap)
	fmt.Printf("  %-28s %8.2f\n", "get / AES-256-GCM (1 core)", get/aes)
	fmt.Printf("  %-28s %8.2f\n", "get / put", get/put)

	raw := mbs["RawStreamTCP1GiB"]
	np, ng, ng2 := metric["Network5Nodes1GiB put-MB/s"], metric["Network5Nodes1GiB get-MB/s"], metric["Network5Nodes1GiB get2down-MB/s"]
	if raw == 0 || np == 0 {
		return // network benchmarks not in this run
	}
	fmt.Println()
	fmt.Println("umbra network, 5 daemons on 127.0.0.1, 1 GiB random file, 3+2, same run")
	nm := func(k string) float64 { return metric["Network5Nodes1GiB "+k] }
	fmt.Printf("  %-28s %8.0f MB/s   goal ≥ 400 (until every shard is durable on its peer)\n", "put", np)
	fmt.Printf("  %-28s %8.0f MB/s   goal ≥ get with two killed, and ≥ 1000 or ≥ 0.70 of raw\n", "get, all nodes up", ng)
	fmt.Printf("  %-28s %8.0f MB/s   goal ≥ 1000 or ≥ 0.70 of raw\n", "get, two holders killed", ng2)
	nullMBs := nm("get-devnull-MB/s")
	fmt.Printf("  %-28s %8.0f MB/s   (the same get into /dev/null: no consumer copying out of a pipe beside it)\n", "get, all up, to /dev/null", nullMBs)
	fmt.Printf("  %-28s %8.3f        goal ≤ 1.05 (shards received over the k each stripe needs)\n", "get, all up: shards / need", nm("get-shards/needed"))
	fmt.Printf("  %-28s %8.1f / %.1f / %.1f CPU-s per GiB, every daemon and the command (goals: put ≤ 6, get ≤ 3)\n",
		"put / get / get2down", nm("put-cpu-s/GiB"), nm("get-cpu-s/GiB"), nm("get2down-cpu-s/GiB"))
	// Cores busy: CPU-s per GiB times GiB per second. Where it is near the
	// machine's cores, only less CPU per GiB makes the figure faster.
	busy := func(mbs, cpu float64) float64 { return mbs * 1e6 / (1 << 30) * cpu }
	cores := float64(runtime.NumCPU())
	allow := func(cpu float64) float64 { return cores / cpu * (1 << 30) / 1e6 } // MB/s
	putCPU, getCPU, nullCPU := nm("put-cpu-s/GiB"), nm("get-cpu-s/GiB"), nm("get-devnull-cpu-s/GiB")
	fmt.Printf("  %-28s %8.1f / %.1f / %.1f of %.0f (at all %.0f, the same CPU per GiB would allow %.0f / %.0f / %.0f MB/s)\n",
		"cores busy: put / get / null", busy(np, putCPU), busy(ng, getCPU), busy(nullMBs, nullCPU), cores, cores,
		allow(putCPU), allow(getCPU), allow(nullCPU))
	fmt.Printf("  %-28s %8.1f CPU-s per GiB over %.0f s after the put returned (put and announcing: %.1f)\n",
		"announcing the put's blocks", nm("announce-cpu-s/GiB"), nm("announce-s"), nm("put-cpu-s/GiB")+nm("announce-cpu-s/GiB"))
	fmt.Printf("  %-28s %8.0f MiB    goal ≤ 200\n", "daemon peak RSS (max of 5)", metric["Network5Nodes1GiB daemon-peak-RSS-MiB"])
	fmt.Printf("  %-28s %8.1f / %.1f ms (medians of 21 through the CLI, process start included; goal ≤ 20)\n",
		"4 KiB put / get", nm("small-put-ms"), nm("small-get-ms"))
	fmt.Printf("  %-28s %8.0f MB/s   (ceiling: one libp2p TCP stream between two hosts)\n", "raw libp2p stream", raw)
	fmt.Printf("  %-28s %8.2f / %.2f / %.2f\n", "put, get, get2down / raw", np/raw, ng/raw, ng2/raw)
	fmt.Printf("  %-28s %8.2f   (the five daemons share this disk: %.0f MB/s for a put, as offline)\n", "put / disk ceiling", np/diskCap, diskCap)
	folders(metric)
	mount(metric)
	gcStall(metric)
}

// gcStall prints the GC benchmark's figures, if it ran.
func gcStall(metric map[string]float64) {
	m := func(k string) float64 { return metric["GCStall5Nodes "+k] }
	if m("gc-longest-s") == 0 {
		return
	}
	fmt.Println()
	fmt.Println("umbra GC, 5 daemons on 127.0.0.1, 1 GiB of expired shards on each (a 3 GiB file), a 2 GiB get, same run")
	fmt.Printf("  %-28s %8.1f s        goal < 10 (GC and compaction, all five at once, during a get)\n", "umbra gc, slowest node", m("gc-longest-s"))
	fmt.Printf("  %-28s %8.2f         goal ≥ 0.80 (the get's rate over 3 s of GC over its rate alone, %.0f MB/s)\n", "get during GC / alone", m("get-during-gc/alone"), m("get-alone-MB/s"))
	fmt.Printf("  %-28s %8.2f         (the control: beside umbra gc with nothing to collect, two runs)\n", "get during no-op GC / alone", m("get-during-noop-gc/alone"))
	fmt.Printf("  %-28s %8.2f         (the GC's own cost, the control's taken out)\n", "get during GC / no-op GC", m("get-during-gc/noop-gc"))
}

// mount prints the mount benchmark's figures, if it ran.
func mount(metric map[string]float64) {
	m := func(k string) float64 { return metric["Mount5Nodes "+k] }
	if m("mount-read-MB/s") == 0 {
		return
	}
	fmt.Println()
	fmt.Println("umbra mount, 5 daemons on 127.0.0.1, same run")
	fmt.Printf("  %-28s %8.0f MB/s   (umbra get of the same file: %.0f MB/s; ratio %.2f, goal ≥ 0.70)\n", "1 GiB read, cold node", m("mount-read-MB/s"), m("get-MB/s"), m("mount/get"))
	fmt.Printf("  %-28s %8.0f MB/s   goal ≥ 1500\n", "same read again (warm)", m("mount-warm-MB/s"))
	fmt.Printf("  %-28s %8.1f ms     goal ≤ 100\n", "first byte, 100 MiB file", m("ttfb-ms"))
	fmt.Printf("  %-28s %8.0f files/s  goal ≥ 500 (until unmount returns)\n", "cp -r 1,000 × 16 KiB", m("cp-r-files/s"))
	fmt.Printf("  %-28s %8.0f MiB    goal ≤ 200 (the daemon serving the mount; it grew by %.0f MiB from the mount's start)\n",
		"mount peak RSS (1 GiB read)", m("mount-peak-RSS-MiB"), m("mount-added-RSS-MiB"))
}

// folders prints the folder benchmark's figures, if it ran.
func folders(metric map[string]float64) {
	m := func(k string) float64 { return metric["Folders5Nodes "+k] }
	if m("put-r-files/s") == 0 {
		return
	}
	fmt.Println()
	fmt.Println("umbra folders, 5 daemons on 127.0.0.1, 10,000 files of 4 KiB in one folder, same run (CLI start included)")
	fmt.Printf("  %-28s %8.0f files/s  goal ≥ 2000 (until durable)\n", "put -r", m("put-r-files/s"))
	fmt.Printf("  %-28s %8.0f files/s  goal ≥ 3000\n", "get -r, to disk", m("get-r-files/s"))
	fmt.Printf("  %-28s %8.0f files/s  (umbra without the disk)\n", "get -r, to tmpfs", m("get-r-tmpfs-files/s"))
	fmt.Printf("  %-28s %8.0f ms       goal < 1000\n", "ls -l, node never read it", m("ls-l-10k-cold-ms"))
	fmt.Printf("  %-28s %8.0f ms       goal < 300\n", "put one file into it", m("put-into-10k-ms"))
	fmt.Printf("  %-28s %8.0f ms       goal < 200\n", "resolve 5 folders deep, cold", m("resolve-depth5-cold-ms"))
	fmt.Printf("  %-28s %8.0f ms\n", "CLI start (alias list)", m("cli-start-ms"))
}
