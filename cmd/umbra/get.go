package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/umbra-store/umbra/internal/dirs"
	"github.com/umbra-store/umbra/internal/printable"
	"github.com/umbra-store/umbra/internal/xfer"
	"github.com/umbra-store/umbra/keyring"
)

type getOptions struct {
	cap    string // a capability or a path
	output string
	force  bool
	json   bool
}

func getCommand() *cli.Command {
	return &cli.Command{
		Name:      "get",
		Usage:     "read a file back from its read capability or its path, or a folder with -r",
		ArgsUsage: "CAPABILITY|ALIAS:path",
		Description: "Writes the file to -o FILE (atomically: a failed get leaves no partial\n" +
			"file and an existing FILE untouched), or to standard output with -o -.\n" +
			"Without -o, the name recorded at put is used, in the current directory;\n" +
			"a file of that name is never replaced, and a hidden name (.bashrc) never\n" +
			"taken, unless --force is given. With -r, fetches the folder at the path\n" +
			"into the directory -o DIR (new or empty; --force writes into a full one),\n" +
			"restoring names, modification times and permissions (less your umask;\n" +
			"setuid, setgid and sticky bits are never restored).",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "where to write: `FILE`, or - for standard output"},
			&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "without -o: take the stored name even for a hidden file, and replace an existing file of that name"},
			&cli.BoolFlag{Name: "recursive", Aliases: []string{"r"}, Usage: "fetch a folder into -o DIR"},
			&cli.BoolFlag{Name: "json", Usage: "print what was read as JSON: size, and where the shards and bytes came from (on standard error with -o -)"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usageError{fmt.Errorf("get takes one CAPABILITY or ALIAS:path")}
			}
			o := getOptions{cap: c.Args().First(), output: c.String("output"), force: c.Bool("force"), json: c.Bool("json")}
			if c.Bool("recursive") {
				return runGetTree(c, o)
			}
			return runGet(c, o)
		},
	}
}

func runGet(c *cli.Context, o getOptions) error {
	if !dirs.IsPath(o.cap) {
		return usageError{fmt.Errorf("not a capability or ALIAS:path: %q", printable.String(o.cap))}
	}
	if strings.HasPrefix(o.cap, "umbra:") && !strings.Contains(o.cap, "/") {
		if _, err := keyring.ParseReadCap(o.cap); err != nil {
			return err
		}
	}
	s, err := openStore(c)
	if err != nil {
		return err
	}
	defer s.Close()
	st, err := s.Stat(c.Context, o.cap)
	if err != nil {
		return err
	}
	if o.output != "" && o.output != "-" {
		if fi, err := os.Stat(o.output); err == nil && fi.IsDir() {
			return usageError{fmt.Errorf("%s is a directory: give a file name with -o", o.output)}
		} else if err == nil && !fi.Mode().IsRegular() {
			// A device or a named pipe (-o /dev/null): written in place,
			// as cp and curl do; a temp file renamed over it would
			// replace the device node.
			return getToDevice(c, s, o, st.Size)
		}
	}
	out := o.output
	// The stored name is the capability creator's choice: it never
	// replaces a file unless the user said so (-o names it, or --force).
	replace := out != "" || o.force
	if out == "" {
		if st.Name == "" {
			return usageError{errors.New("the file has no stored name: say where with -o FILE, or -o - for standard output")}
		}
		if !printable.PlainName(st.Name) {
			return usageError{fmt.Errorf("refused the stored name %q: not a plain file name (it could write outside this directory); say where with -o FILE", st.Name)}
		}
		if hiddenName(st.Name) && !o.force {
			return usageError{fmt.Errorf("refused the stored name %q: a hidden file (it could change how programs here behave); say where with -o FILE, or pass --force", st.Name)}
		}
		out = st.Name
		if _, err := os.Lstat(out); err == nil && !replace {
			return existsError(out)
		}
	}
	bar := newProgress(int64(st.Size), "get")
	defer finish(bar)
	if out == "-" {
		// Standard output (an *os.File) is handed to the daemon when it
		// is not a terminal.
		stats, err := s.Get(c.Context, o.cap, c.App.Writer, barSetter(bar))
		if err == nil && o.json {
			err = json.NewEncoder(c.App.ErrWriter).Encode(getResult{Size: st.Size, Stats: stats})
		}
		return err
	}
	stats, err := getToFile(c, s, o.cap, out, replace, bar)
	if err == nil && o.json {
		err = json.NewEncoder(c.App.Writer).Encode(getResult{Path: out, Size: st.Size, Stats: stats})
	}
	return err
}

// getToDevice writes the file into o.output, an existing device or named
// pipe, opened for writing as it is.
func getToDevice(c *cli.Context, s store, o getOptions, size uint64) error {
	f, err := os.OpenFile(o.output, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	bar := newProgress(int64(size), "get")
	defer finish(bar)
	stats, err := s.Get(c.Context, o.cap, f, barSetter(bar))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && o.json {
		err = json.NewEncoder(c.App.Writer).Encode(getResult{Path: o.output, Size: size, Stats: stats})
	}
	return err
}

// getToFile writes the file beside out and renames it there: nothing
// partial is ever left at out, and an existing out is replaced only if
// replace says so.
func getToFile(c *cli.Context, s store, capText, out string, replace bool, bar *progressbar.ProgressBar) (xfer.Report, error) {
	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".umbra-*")
	if err != nil {
		return xfer.Report{}, err
	}
	defer os.Remove(tmp.Name())
	stats, err := s.Get(c.Context, capText, tmp, barSetter(bar))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return stats, err
	}
	if err := os.Chmod(tmp.Name(), os.FileMode(0o666&^umask())); err != nil {
		return stats, err
	}
	if err := moveInto(tmp.Name(), out, replace); err != nil {
		return stats, err
	}
	// The rename itself must survive a crash.
	d, err := os.Open(filepath.Dir(out))
	if err != nil {
		return stats, nil
	}
	defer d.Close()
	return stats, d.Sync()
}

// getResult is what get --json prints.
type getResult struct {
	Path  string      `json:"path,omitempty"`
	Size  uint64      `json:"size"`
	Stats xfer.Report `json:"stats"`
}

// hiddenName reports a dot file: a new .bash_profile or .envrc in the
// working directory changes what programs do there, so the capability
// creator's choice of one is not taken without --force.
func hiddenName(name string) bool { return strings.HasPrefix(name, ".") }

// existsError refuses to replace out.
func existsError(out string) error {
	return usageError{fmt.Errorf("%s exists: not replaced (pass --force to replace it, or -o FILE to write elsewhere)", out)}
}

// moveInto renames the finished temp file to out: over an existing file only
// if replace is set, otherwise atomically refusing one that appeared while
// the file downloaded.
func moveInto(tmp, out string, replace bool) error {
	if replace {
		return os.Rename(tmp, out)
	}
	err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, out, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EEXIST) {
		return existsError(out)
	}
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
		// A file system without RENAME_NOREPLACE: a hard link fails if
		// out exists.
		if err := os.Link(tmp, out); err != nil {
			if errors.Is(err, os.ErrExist) {
				return existsError(out)
			}
			return err
		}
		return os.Remove(tmp)
	}
	if err != nil {
		return &os.LinkError{Op: "rename", Old: tmp, New: out, Err: err}
	}
	return nil
}
