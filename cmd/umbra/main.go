// Command umbra is the umbra CLI: it parses flags, makes one call into the
// node, and prints the result. See README.md for a tour.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/umbra-store/umbra/internal/kind"
	"github.com/umbra-store/umbra/internal/printable"
)

// cliMemory bounds the Go heap of a CLI command, so that its RSS stays
// flat on large transfers (the daemon sets its own, daemonMemory).
const cliMemory = 96 << 20 // bytes

// setMemoryLimit sets the Go heap's soft limit, unless the user set one
// with GOMEMLIMIT.
func setMemoryLimit(n int64) {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(n)
	}
}

func main() { os.Exit(runApp(newApp())) }

// runApp runs the CLI app on this process's arguments and returns the exit
// code, having printed any error.
func runApp(app *cli.App) int {
	setMemoryLimit(cliMemory)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// After the first Ctrl-C starts a clean stop, a second one kills.
	go func() { <-ctx.Done(); stop() }()
	err := app.RunContext(ctx, interspersed(app, os.Args))
	if kind.Of(err) == kind.BrokenPipe {
		return kind.BrokenPipe.ExitCode() // the reader went away: quietly, as on SIGPIPE
	}
	if err != nil {
		msg, code := describe(err)
		// Error text can carry a peer's words or a manifest's name.
		fmt.Fprintln(os.Stderr, "umbra: "+printable.String(msg))
		return code
	}
	return 0
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
			mkdirCommand(),
			lsCommand(),
			rmCommand(),
			mvCommand(),
			lnCommand(),
			shareCommand(),
			aliasCommand(),
			mountCommand(),
			unmountCommand(),
			capCommand(),
			daemonCommand(),
			statusCommand(),
			gcCommand(),
			checkCommand(),
			repairCommand(),
			maintainCommand(),
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
