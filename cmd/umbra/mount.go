package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"

	"github.com/urfave/cli/v2"

	"github.com/umbra-store/umbra/fuse"
	"github.com/umbra-store/umbra/internal/api"
	"github.com/umbra-store/umbra/internal/daemon"
	"github.com/umbra-store/umbra/internal/kind"
	"github.com/umbra-store/umbra/internal/node"
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
			&cli.StringFlag{Name: "cpuprofile", Usage: "with --offline: write a CPU profile to `FILE` until the mount ends", Hidden: true},
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
type mountStatus = api.MountStatus

func runMount(c *cli.Context, ref, dir string) error {
	if st, err := os.Stat(dir); err == nil && !st.IsDir() {
		return usageError{fmt.Errorf("%s is not a directory", dir)}
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if !c.Bool("offline") {
		return daemonMount(c, ref, dir, abs)
	}
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
	cleared, err := fuse.ClearStale(abs)
	if err != nil {
		return err
	}
	n, err := node.Open(c.String("path"), logger(c))
	if err != nil {
		return err
	}
	off, err := newOfflineStore(c, n)
	if err != nil {
		return err
	}
	defer off.Close()
	s := daemon.NewMountStore(off.eng, off.dirs, n.Config.Put.Shards)
	root, err := fuse.ResolveRoot(c.Context, s, ref)
	if err != nil {
		return err
	}
	stageDir := filepath.Join(c.String("path"), "staging")
	if err := os.MkdirAll(stageDir, 0o700); err != nil {
		return err
	}
	mt, err := fuse.New(abs, s, root, fuse.Options{Log: logger(c), StageDir: stageDir})
	if err != nil {
		return err
	}
	st := mountStatus{Dir: abs, Kind: "file", ReadOnly: !root.Writable, PID: os.Getpid(), Cleared: cleared}
	if root.IsFolder {
		st.Kind = "folder"
	}
	printMounted(c, st, dir)
	done := make(chan struct{})
	go func() { mt.Wait(); close(done) }()
	select {
	case <-c.Context.Done():
		return mt.Unmount()
	case <-done: // unmounted from outside (umbra unmount): publish what is left
		return mt.Close()
	}
}

// daemonMount has the node's daemon mount ref on abs, and unmounts it on
// Ctrl-C or SIGTERM (a killed mount process's drive is unmounted by the
// daemon when the request's connection closes).
func daemonMount(c *cli.Context, ref, dir, abs string) error {
	cl, err := api.Dial(c.String("path"))
	if err != nil {
		return err
	}
	// Once mounted, the request outlives Ctrl-C (the unmount is asked for
	// and published before it ends); until then Ctrl-C gives up.
	rctx, giveUp := context.WithCancel(context.WithoutCancel(c.Context))
	defer giveUp()
	mounted := make(chan struct{})
	go func() {
		select {
		case <-c.Context.Done():
			giveUp()
		case <-mounted:
		}
	}()
	st, wait, err := cl.Mount(rctx, api.MountRequest{Ref: ref, Dir: abs})
	close(mounted)
	if err != nil {
		return err
	}
	printMounted(c, st, dir)
	ended := make(chan error, 1)
	go func() { ended <- wait() }()
	select {
	case <-c.Context.Done():
		if err := cl.Unmount(context.Background(), abs); err != nil {
			return err
		}
		return <-ended
	case err := <-ended: // unmounted from outside, or the daemon stopped
		return err
	}
}

func printMounted(c *cli.Context, st mountStatus, dir string) {
	if st.Cleared {
		fmt.Fprintf(c.App.ErrWriter, "umbra: cleared a stale mount on %s (its mount process had died)\n", dir)
	}
	st.Dir = dir
	if c.Bool("json") {
		_ = json.NewEncoder(c.App.Writer).Encode(st)
		return
	}
	mode := "read-write"
	if st.ReadOnly {
		mode = "read-only"
	}
	fmt.Fprintf(c.App.Writer, "mounted %s on %s (%s); Ctrl-C unmounts\n", st.Kind, dir, mode)
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
			return runUnmount(c, c.Args().First())
		},
	}
}

// runUnmount asks the node's daemon to unmount dir (what was written is
// published first); a mount it does not serve (an --offline one, a stale
// one) is unmounted here.
func runUnmount(c *cli.Context, dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if cl, err := api.Dial(c.String("path")); err == nil {
		err := cl.Unmount(c.Context, abs)
		if kind.Of(err) != kind.NotFound {
			return err
		}
	}
	return fuse.Unmount(abs)
}
