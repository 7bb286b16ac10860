package main

import (
	"encoding/json"

	"fmt"
	"github.com/umbra-store/umbra/internal/api"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/umbra-store/umbra/internal/config"
	"github.com/umbra-store/umbra/internal/engine"
	"github.com/umbra-store/umbra/internal/node"
)

type putOptions struct {
	path      string
	file      string
	shards    string
	randomKey bool
	name      string
	offline   bool
	allowFew  bool
	json      bool
}

func putCommand() *cli.Command {
	return &cli.Command{
		Name:      "put",
		Usage:     "store a file and print its read capability",
		ArgsUsage: "FILE|-",
		Description: "Encrypts FILE (or standard input for -), erasure-codes it and stores it.\n" +
			"Prints one line: the file's read capability (umbra:fr:...). Whoever holds it\n" +
			"can read the file; keep it like a password.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "shards", Usage: "erasure coding `K+M`: any K of K+M shards rebuild a stripe (default from config, 3+2)"},
			&cli.BoolFlag{Name: "random-key", Usage: "random chunk keys: no deduplication with earlier copies of the same data"},
			&cli.StringFlag{Name: "name", Usage: "file name to record (default: FILE's base name; none for stdin)"},
			&cli.BoolFlag{Name: "allow-fewer-peers", Usage: "store even with fewer than K+1 peers (losing one may lose data)"},
			&cli.BoolFlag{Name: "json", Usage: "print the result as JSON"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usageError{fmt.Errorf("put takes one FILE (or - for standard input)")}
			}
			return runPut(c, putOptions{
				path: c.String("path"), file: c.Args().First(), shards: c.String("shards"),
				randomKey: c.Bool("random-key"), name: c.String("name"), offline: c.Bool("offline"),
				allowFew: c.Bool("allow-fewer-peers"), json: c.Bool("json"),
			})
		},
	}
}

func logger(c *cli.Context) *slog.Logger {
	if c.Bool("verbose") {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func runPut(c *cli.Context, o putOptions) error {
	var in io.Reader = os.Stdin
	var size int64 = -1
	name := o.name
	if o.file != "-" {
		f, err := os.Open(o.file)
		if err != nil {
			return err
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return err
		}
		if st.IsDir() {
			return usageError{fmt.Errorf("%s is a directory (put stores one file)", o.file)}
		}
		in, size = f, st.Size()
		if name == "" {
			name = filepath.Base(o.file)
		}
	}
	if !o.offline {
		return runPutDaemon(c, o, in, size, name)
	}
	n, err := node.Open(o.path, logger(c))
	if err != nil {
		return err
	}
	defer n.Close()
	shards := o.shards
	if shards == "" {
		shards = n.Config.Put.Shards
	}
	k, m, err := config.ParseShards(shards)
	if err != nil {
		return usageError{err}
	}
	bar := newProgress(size, "put")
	opts := engine.PutOptions{K: k, M: m, RandomKey: o.randomKey, Name: name}
	if bar != nil {
		opts.Progress = func(done int64) { _ = bar.Set64(done) }
	}
	res, err := n.Engine.Put(c.Context, in, opts)
	if bar != nil {
		_ = bar.Finish()
	}
	if err != nil {
		return err
	}
	return printPut(c, o, api.PutResult{Cap: res.Cap.Encode(), Size: res.Size, Chunks: res.Chunks, Warnings: res.Warnings})
}

func printPut(c *cli.Context, o putOptions, res api.PutResult) error {
	for _, w := range res.Warnings {
		fmt.Fprintln(c.App.ErrWriter, "umbra: warning: "+w)
	}
	if o.json {
		return json.NewEncoder(c.App.Writer).Encode(res)
	}
	fmt.Fprintln(c.App.Writer, res.Cap)
	return nil
}

func runPutDaemon(c *cli.Context, o putOptions, in io.Reader, size int64, name string) error {
	if o.shards != "" {
		if _, _, err := config.ParseShards(o.shards); err != nil {
			return usageError{err}
		}
	}
	cl, err := api.Dial(o.path)
	if err != nil {
		return err
	}
	bar := newProgress(size, "put")
	opts := api.PutOptions{Shards: o.shards, RandomKey: o.randomKey, Name: name, AllowFewerPeers: o.allowFew}
	var res api.PutResult
	if f, ok := in.(*os.File); ok && !term.IsTerminal(int(f.Fd())) {
		// The daemon reads the file (or pipe) itself: one copy fewer.
		res, err = cl.PutFile(c.Context, f, opts, barSetter(bar))
	} else {
		// A terminal stays with this process: the daemon must not read
		// what the user types after a cancelled put.
		if bar != nil {
			in = io.TeeReader(in, progressWriter{w: io.Discard, bar: bar})
		}
		res, err = cl.Put(c.Context, in, opts)
	}
	if bar != nil {
		_ = bar.Finish()
	}
	if err != nil {
		return err
	}
	return printPut(c, o, res)
}
