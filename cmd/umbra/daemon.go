package main

import (
	"fmt"
	"log/slog"
	"os"
	"runtime/pprof"

	"github.com/urfave/cli/v2"

	"github.com/umbra-store/umbra/internal/daemon"
	"github.com/umbra-store/umbra/internal/shard"
)

// daemonMemory bounds the daemon's Go heap: Pebble, libp2p and up to two
// puts and gets at once.
const daemonMemory = 150 << 20 // bytes

type daemonOptions struct {
	path       string
	listen     []string
	bootstrap  []string
	procs      int
	cpuprofile string
	// served wraps what the shard server serves; only tests set it (a test
	// binary standing in for umbra, to inject faults).
	served func(shard.Store) shard.Store
}

func daemonCommand() *cli.Command {
	return &cli.Command{
		Name:  "daemon",
		Usage: "run this node: store shards for peers, serve the API",
		Description: "Runs the node in the foreground until SIGINT or SIGTERM. Listens on the\n" +
			"config's Network.Listen addresses (or --listen), connects to\n" +
			"Network.Bootstrap peers (and --bootstrap), and serves the CLI on a unix\n" +
			"socket in the node directory. Nothing is dialled that you did not name:\n" +
			"no public bootstrap, no mDNS, no NAT mapping.",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "listen", Usage: "multiaddr to listen on (repeatable; replaces the config's)"},
			&cli.StringSliceFlag{Name: "bootstrap", Usage: "peer multiaddr ending in /p2p/ID to connect to (repeatable)"},
			&cli.IntFlag{Name: "procs", Usage: "cores (GOMAXPROCS) to serve peers with; a put or get for this node's user uses all (default: all)"},
			&cli.StringFlag{Name: "cpuprofile", Usage: "write a CPU profile to `FILE` until the daemon stops, and its heap profile to FILE.heap at stop", Hidden: true},
		},
		Action: func(c *cli.Context) error { return runDaemon(c, daemonFlags(c)) },
	}
}

func daemonFlags(c *cli.Context) daemonOptions {
	return daemonOptions{
		path: c.String("path"), listen: c.StringSlice("listen"), bootstrap: c.StringSlice("bootstrap"),
		procs: c.Int("procs"), cpuprofile: c.String("cpuprofile"),
	}
}

func runDaemon(c *cli.Context, o daemonOptions) error {
	setMemoryLimit(daemonMemory)
	level := slog.LevelInfo
	if c.Bool("verbose") {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if o.cpuprofile != "" {
		f, err := os.Create(o.cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
		defer writeHeapProfile(o.cpuprofile + ".heap")
	}
	return daemon.Run(c.Context, daemon.Options{
		Path: o.path, Listen: o.listen, Bootstrap: o.bootstrap, Log: log, ServeProcs: o.procs, Served: o.served,
	})
}

// writeHeapProfile writes the heap profile (allocations since start
// included) to path; a profiling aid, so a failure is only printed.
func writeHeapProfile(path string) {
	f, err := os.Create(path)
	if err == nil {
		err = pprof.Lookup("heap").WriteTo(f, 0)
		f.Close()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "umbra: heap profile:", err)
	}
}
