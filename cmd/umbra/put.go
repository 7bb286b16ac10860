package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/umbra-store/umbra/internal/api"
	"github.com/umbra-store/umbra/internal/config"
)

type putOptions struct {
	file      string
	dest      string // a folder path, or ""
	recursive bool
	shards    string
	randomKey bool
	name      string
	allowFew  bool
	json      bool
	expire    time.Duration // self-destruct after; 0: no
}

func putCommand() *cli.Command {
	return &cli.Command{
		Name:      "put",
		Usage:     "store a file (and print its read capability), or store it in a folder",
		ArgsUsage: "FILE|- [ALIAS:path] | -r DIR ALIAS:path",
		Description: "Encrypts FILE (or standard input for -), erasure-codes it and stores it.\n" +
			"Without a path, prints one line: the file's read capability (umbra:fr:...).\n" +
			"Whoever holds it can read the file; keep it like a password.\n" +
			"With ALIAS:path, stores it in that folder (into it if path is a folder),\n" +
			"replacing a file of the same name. With -r, stores the tree under DIR as\n" +
			"the folder ALIAS:path (merged into it if it exists), files in parallel.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "shards", Usage: "erasure coding `K+M`: any K of K+M shards rebuild a stripe (default from config, 3+2)"},
			&cli.BoolFlag{Name: "random-key", Usage: "random chunk keys: no deduplication with earlier copies of the same data"},
			&cli.StringFlag{Name: "name", Usage: "file name to record (default: FILE's base name; none for stdin)"},
			&cli.BoolFlag{Name: "allow-fewer-peers", Usage: "store even with fewer than K+1 peers (losing one may lose data)"},
			&cli.BoolFlag{Name: "json", Usage: "print the result as JSON"},
			&cli.BoolFlag{Name: "recursive", Aliases: []string{"r"}, Usage: "store the tree under DIR into a folder"},
			&cli.DurationFlag{Name: "expire", Usage: "self-destruct: a copy under random keys that peers delete `DURATION` from now (1h, 30m); a file of its own only"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() < 1 || c.NArg() > 2 {
				return usageError{fmt.Errorf("put takes one FILE (or - for standard input), and a folder path")}
			}
			o := putOptions{
				file: c.Args().First(), dest: c.Args().Get(1), recursive: c.Bool("recursive"), shards: c.String("shards"),
				randomKey: c.Bool("random-key"), name: c.String("name"), allowFew: c.Bool("allow-fewer-peers"), json: c.Bool("json"),
				expire: c.Duration("expire"),
			}
			if o.expire != 0 && (o.expire < time.Second || o.dest != "" || o.recursive) {
				return usageError{fmt.Errorf("--expire takes a duration of at least 1s, for a file of its own (not a folder path)")}
			}
			if o.recursive {
				return runPutTree(c, o)
			}
			return runPut(c, o)
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
	if o.shards != "" {
		if _, _, err := config.ParseShards(o.shards); err != nil {
			return usageError{err}
		}
	}
	var in io.Reader = os.Stdin
	var size int64 = -1
	var mode uint32
	var mtime int64
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
			return usageError{fmt.Errorf("%s is a directory (put -r DIR ALIAS:path stores a tree)", o.file)}
		}
		in, size = f, st.Size()
		mode, mtime = uint32(st.Mode().Perm()), st.ModTime().UnixNano()
		if name == "" {
			name = filepath.Base(o.file)
		}
	}
	s, err := openStore(c)
	if err != nil {
		return err
	}
	defer s.Close()
	bar := newProgress(size, "put")
	po := api.PutOptions{Shards: o.shards, RandomKey: o.randomKey, Name: name, AllowFewerPeers: o.allowFew, Expire: o.expire}
	if o.dest != "" {
		po.Path, po.Mode, po.MTime = o.dest, mode, mtime
	}
	res, err := s.Put(c.Context, in, size, po, barSetter(bar))
	finish(bar)
	if err != nil {
		return err
	}
	for _, w := range res.Warnings {
		fmt.Fprintln(c.App.ErrWriter, "umbra: warning: "+w)
	}
	if o.json {
		return json.NewEncoder(c.App.Writer).Encode(res)
	}
	if res.Cap != "" {
		fmt.Fprintln(c.App.Writer, res.Cap)
	}
	return nil
}
