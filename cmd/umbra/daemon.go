package main

import (
	"log/slog"
	"os"
	"runtime/pprof"

	"github.com/urfave/cli/v2"

	"github.com/umbra-store/umbra/internal/daemon"
)

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
			&cli.BoolFlag{Name: "fault-corrupt-shards", Usage: "testing only: serve every block with a flipped bit", Hidden: true},
			&cli.StringFlag{Name: "cpuprofile", Usage: "write a CPU profile to `FILE` until the daemon stops", Hidden: true},
		},
		Action: func(c *cli.Context) error {
			log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
			if c.Bool("verbose") {
				log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
			}
			if p := c.String("cpuprofile"); p != "" {
				f, err := os.Create(p)
				if err != nil {
					return err
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return err
				}
				defer pprof.StopCPUProfile()
			}
			return daemon.Run(c.Context, daemon.Options{
				Path: c.String("path"), Listen: c.StringSlice("listen"), Bootstrap: c.StringSlice("bootstrap"),
				Log: log, CorruptServedShards: c.Bool("fault-corrupt-shards"), ServeProcs: c.Int("procs"),
			})
		},
	}
}
