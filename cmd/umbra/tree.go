package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"

	"github.com/umbra-store/umbra/internal/dirs"
	"github.com/umbra-store/umbra/internal/printable"
)

// runPutTree stores the tree under o.file as the folder o.dest.
func runPutTree(c *cli.Context, o putOptions) error {
	if o.dest == "" {
		return usageError{errors.New("put -r takes DIR and a folder path ALIAS:path")}
	}
	if o.shards != "" || o.randomKey || o.name != "" {
		return usageError{errors.New("put -r takes the folder's shards from the config: no --shards, --random-key or --name")}
	}
	dir, err := os.Open(o.file)
	if err != nil {
		return err
	}
	defer dir.Close()
	if st, err := dir.Stat(); err != nil || !st.IsDir() {
		return usageError{fmt.Errorf("%s is not a directory", o.file)}
	}
	s, err := openStore(c)
	if err != nil {
		return err
	}
	defer s.Close()
	bar := treeBar(o.file, "put")
	res, err := s.PutTree(c.Context, dir, o.dest, treeSetter(bar))
	finish(bar)
	for _, p := range res.Skipped {
		fmt.Fprintf(c.App.ErrWriter, "umbra: skipped %s: not a regular file or folder\n", printable.String(p))
	}
	if err != nil {
		return err
	}
	return treeReport(c.App.Writer, res, c.Bool("json"))
}

func treeReport(w io.Writer, res dirs.TreeResult, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(w).Encode(res)
	}
	fmt.Fprintf(w, "%d files, %d folders, %d bytes\n", res.Files, res.Folders, res.Bytes)
	return nil
}

// treeBar is a bar over the bytes of the files under dir (walked here for
// the total), when stderr is a terminal.
func treeBar(dir, what string) *progressbar.ProgressBar {
	bar := newProgress(-1, what)
	if bar == nil || dir == "" {
		return bar
	}
	var total int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				total += info.Size()
			}
		}
		return nil
	})
	bar.ChangeMax64(total)
	return bar
}

// treeSetter shows bytes and files on bar (nil: no callback).
func treeSetter(bar *progressbar.ProgressBar) func(bytes, files int64) {
	if bar == nil {
		return nil
	}
	return func(n, files int64) {
		bar.Describe(fmt.Sprintf("%d files", files))
		_ = bar.Set64(n)
	}
}

// runGetTree fetches the folder o.cap into the directory o.output.
func runGetTree(c *cli.Context, o getOptions) error {
	out := o.output
	if out == "" || out == "-" {
		return usageError{errors.New("get -r needs -o DIR")}
	}
	if err := os.Mkdir(out, 0o777); err != nil {
		if !errors.Is(err, fs.ErrExist) {
			return err
		}
		if ents, rerr := os.ReadDir(out); rerr != nil || (len(ents) > 0 && !o.force) {
			return usageError{fmt.Errorf("%s exists and is not empty: not written into (pass --force to replace files in it)", out)}
		}
	}
	dir, err := os.Open(out)
	if err != nil {
		return err
	}
	defer dir.Close()
	s, err := openStore(c)
	if err != nil {
		return err
	}
	defer s.Close()
	bar := treeBar("", "get")
	res, err := s.GetTree(c.Context, o.cap, dir, dirs.GetOptions{Force: o.force, Umask: umask()}, treeSetter(bar))
	finish(bar)
	if err != nil {
		return err
	}
	return treeReport(c.App.ErrWriter, res, false)
}
