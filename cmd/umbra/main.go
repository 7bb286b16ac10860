// Command umbra is the umbra CLI: it parses flags, makes one call into the
// node, and prints the result. See README.md for a tour.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/umbra-store/umbra/internal/api"
	"github.com/umbra-store/umbra/internal/printable"
)

func main() {
	// Bound the Go heap so that RSS stays flat on large transfers; the
	// user's GOMEMLIMIT wins.
	if os.Getenv("GOMEMLIMIT") == "" {
		limit := int64(96 << 20)
		if len(os.Args) > 1 && hasArg(os.Args[1:], "daemon") {
			limit = 150 << 20 // Pebble, libp2p and up to 2 puts and gets at once
		}
		debug.SetMemoryLimit(limit)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// After the first Ctrl-C starts a clean stop, a second one kills.
	go func() { <-ctx.Done(); stop() }()
	app := newApp()
	err := app.RunContext(ctx, interspersed(app, os.Args))
	var ae *api.Error
	if errors.As(err, &ae) && ae.Kind == api.KindBrokenPipe {
		os.Exit(exitBrokenPipe) // the reader went away: quietly, as on SIGPIPE
	}
	if err != nil {
		msg, code := describe(err)
		// Error text can carry a peer's words or a manifest's name.
		fmt.Fprintln(os.Stderr, "umbra: "+printable.String(msg))
		os.Exit(code)
	}
}

func newApp() *cli.App {
	app := &cli.App{
		Name:  "umbra",
		Usage: "a private, erasure-coded, content-addressed file store",
		Flags: []cli.Flag{
			&cli.StringFlag{
				Name:    "path",
				Usage:   "node directory",
				EnvVars: []string{"UMBRA_PATH"},
				Value:   defaultPath(),
			},
			&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "log what happens to stderr"},
			&cli.BoolFlag{Name: "offline", Usage: "work on the local store directly, without a daemon (one node, no network)"},
		},
		Commands: []*cli.Command{
			initCommand(),
			putCommand(),
			getCommand(),
			capCommand(),
			daemonCommand(),
			statusCommand(),
			peersCommand(),
			testnetCommand(),
		},
		HideHelpCommand:      true,
		EnableBashCompletion: false,
		ExitErrHandler:       func(*cli.Context, error) {}, // main prints errors
		OnUsageError:         onUsageError,
	}
	var mark func([]*cli.Command)
	mark = func(cmds []*cli.Command) {
		for _, c := range cmds {
			c.OnUsageError = onUsageError
			mark(c.Subcommands)
		}
	}
	mark(app.Commands)
	return app
}

func onUsageError(_ *cli.Context, err error, _ bool) error { return usageError{err} }

func hasArg(args []string, a string) bool {
	for _, x := range args {
		if x == a {
			return true
		}
	}
	return false
}
