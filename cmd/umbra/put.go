package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

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
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usageError{fmt.Errorf("put takes one FILE (or - for standard input)")}
			}
			return runPut(c, putOptions{
				path: c.String("path"), file: c.Args().First(), shards: c.String("shards"),
				randomKey: c.Bool("random-key"), name: c.String("name"),
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
	fmt.Fprintln(c.App.Writer, res.Cap.Encode())
	return nil
}
