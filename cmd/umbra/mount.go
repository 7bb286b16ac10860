package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/umbra-store/umbra/fuse"
	"github.com/umbra-store/umbra/internal/kind"
	"github.com/umbra-store/umbra/keyring"
)

// mountMemory bounds the mount process's Go heap: the chunk cache (32 MiB)
// and the chunks in flight fit, and RSS stays under 200 MiB.
const mountMemory = 128 << 20

func mountCommand() *cli.Command {
	return &cli.Command{
		Name:      "mount",
		Usage:     "mount a folder (or a file) as a drive until Ctrl-C or umbra unmount",
		ArgsUsage: "CAP|ALIAS:path DIR",
		Description: "Mounts with FUSE, in the foreground. A read capability mounts read-only.\n" +
			"Reads fetch only the chunks they need, keep recent ones in memory and read\n" +
			"ahead; changes made elsewhere show within about 3 seconds. A stale mount\n" +
			"left on DIR by a mount process that died is cleared first.",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print the mount's status as JSON once mounted"},
			&cli.StringFlag{Name: "cpuprofile", Usage: "write a CPU profile to `FILE` until the mount ends", Hidden: true},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 2 {
				return usageError{errors.New("mount takes CAP or ALIAS:path, and DIR")}
			}
			return runMount(c, c.Args().Get(0), c.Args().Get(1))
		},
	}
}

// mountStatus is what mount prints once mounted.
type mountStatus struct {
	Dir      string `json:"dir"`
	Kind     string `json:"kind"` // "folder" or "file"
	ReadOnly bool   `json:"read_only"`
	PID      int    `json:"pid"`
}

func runMount(c *cli.Context, ref, dir string) error {
	setMemoryLimit(mountMemory)
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
	if st, err := os.Stat(dir); err == nil && !st.IsDir() {
		return usageError{fmt.Errorf("%s is not a directory", dir)}
	}
	cleared, err := fuse.ClearStale(dir)
	if err != nil {
		return err
	}
	if cleared {
		fmt.Fprintf(c.App.ErrWriter, "umbra: cleared a stale mount on %s (its mount process had died)\n", dir)
	}
	s, err := openStore(c)
	if err != nil {
		return err
	}
	defer s.Close()
	root, err := mountRoot(c, s, ref)
	if err != nil {
		return err
	}
	stageDir := filepath.Join(c.String("path"), "staging")
	if err := os.MkdirAll(stageDir, 0o700); err != nil {
		return err
	}
	mt, err := fuse.New(dir, s, root, fuse.Options{Log: logger(c), StageDir: stageDir})
	if err != nil {
		return err
	}
	st := mountStatus{Dir: dir, Kind: "file", ReadOnly: !root.Writable, PID: os.Getpid()}
	if root.IsFolder {
		st.Kind = "folder"
	}
	if c.Bool("json") {
		_ = json.NewEncoder(c.App.Writer).Encode(st)
	} else {
		mode := "read-write"
		if st.ReadOnly {
			mode = "read-only"
		}
		fmt.Fprintf(c.App.Writer, "mounted %s on %s (%s); Ctrl-C unmounts\n", st.Kind, dir, mode)
	}
	done := make(chan struct{})
	go func() { mt.Wait(); close(done) }()
	select {
	case <-c.Context.Done():
		return mt.Unmount()
	case <-done: // unmounted from outside (umbra unmount): publish what is left
		return mt.Close()
	}
}

// mountRoot resolves what to mount: a capability as it is, a path to the
// capability of what it names (a folder's write one if the path reaches
// it).
func mountRoot(c *cli.Context, s store, ref string) (fuse.Root, error) {
	capText := ref
	if !strings.HasPrefix(ref, "umbra:") || strings.Contains(ref, "/") {
		w, err := s.Share(c.Context, ref, "write")
		switch {
		case err == nil:
			capText = w
		case kind.Of(err) == kind.ReadOnly || kind.Of(err) == kind.Usage:
			if capText, err = s.Share(c.Context, ref, "read"); err != nil {
				return fuse.Root{}, err
			}
		default:
			return fuse.Root{}, err
		}
	}
	cp, err := keyring.ParseCap(capText)
	if err != nil {
		return fuse.Root{}, err
	}
	switch cp.Kind() {
	case keyring.KindDirRead:
		return fuse.Root{Ref: capText, IsFolder: true}, nil
	case keyring.KindDirWrite:
		return fuse.Root{Ref: capText, IsFolder: true, Writable: true}, nil
	case keyring.KindFileRead:
		st, err := s.Stat(c.Context, capText)
		if err != nil {
			return fuse.Root{}, err
		}
		name := st.Name
		if !plainName(name) {
			name = "file"
		}
		return fuse.Root{Ref: capText, Name: name, Size: st.Size}, nil
	}
	return fuse.Root{}, usageError{fmt.Errorf("a %s capability cannot be mounted: it reads nothing", cp.Kind())}
}

func unmountCommand() *cli.Command {
	return &cli.Command{
		Name:      "unmount",
		Usage:     "unmount a drive umbra mount made (a stale one too)",
		ArgsUsage: "DIR",
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usageError{errors.New("unmount takes DIR")}
			}
			return fuse.Unmount(c.Args().First())
		},
	}
}
