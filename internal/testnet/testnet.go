// Package testnet runs a local umbra network: N real daemon processes on
// 127.0.0.1, each with its own node directory and OS-chosen ports, each
// bootstrapped to the nodes started before it.
package testnet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/umbra-store/umbra/internal/api"
	"github.com/umbra-store/umbra/internal/config"
	"github.com/umbra-store/umbra/internal/daemon"
	"github.com/umbra-store/umbra/internal/node"
	"github.com/umbra-store/umbra/keyring"
)

// StateFile records a testnet in its directory.
const StateFile = "testnet.json"

// Node is one member of a testnet.
type Node struct {
	Index     int      `json:"index"`
	UmbraPath string   `json:"umbra_path"`
	PID       int      `json:"pid"`
	PeerID    string   `json:"peer_id"`
	Socket    string   `json:"api_socket"`
	Addrs     []string `json:"addrs"`
	Log       string   `json:"log"`
	Running   bool     `json:"running"`
	Peers     int      `json:"peers"`
}

// State is a testnet's record.
type State struct {
	Dir   string `json:"dir"`
	Nodes []Node `json:"nodes"`
}

// Options configure Up.
type Options struct {
	Bin   string // the umbra binary
	Dir   string
	Nodes int
	// NodeBin and NodeEnv give a node another binary and extra environment
	// (tests run a node through a test binary that injects faults).
	NodeBin map[int]string
	NodeEnv map[int][]string
	// Timeout bounds the whole start-up. Default 60 s.
	Timeout time.Duration
	// Bootstrap are extra peers every node connects to.
	Bootstrap []string
	// NoMeshWait returns once every daemon answers, without waiting for
	// each to see all the others (tests of refused connections).
	NoMeshWait bool
}

// ErrRunning is returned by Up when the directory's testnet still runs.
var ErrRunning = errors.New("testnet: already running in this directory (run 'umbra testnet down' first)")

// start checks o and returns the start-up's context (bounded by
// o.Timeout, default 60 s) and the testnet directory, absolute.
func (o *Options) start(ctx context.Context) (context.Context, context.CancelFunc, string, error) {
	if o.Nodes < 1 {
		return nil, nil, "", fmt.Errorf("testnet: --nodes must be at least 1")
	}
	if o.Timeout == 0 {
		o.Timeout = 60 * time.Second
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, nil, "", err
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	return ctx, cancel, dir, nil
}

// Up starts the network and returns once every node runs and sees every
// other node.
func Up(ctx context.Context, o Options) (State, error) {
	ctx, cancel, dir, err := o.start(ctx)
	if err != nil {
		return State{}, err
	}
	defer cancel()
	if st, err := Read(dir); err == nil {
		for _, n := range st.Nodes {
			if ours(n) {
				return State{}, ErrRunning
			}
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return State{}, fmt.Errorf("testnet: %w", err)
	}
	st := State{Dir: dir}
	fail := func(err error) (State, error) {
		_ = write(st)
		_ = Down(dir)
		return State{}, err
	}
	for i := 0; i < o.Nodes; i++ {
		n, err := startNode(ctx, o, dir, i, st.Nodes)
		if n.PID != 0 {
			st.Nodes = append(st.Nodes, n)
		}
		if err != nil {
			return fail(err)
		}
		if err := write(st); err != nil {
			return fail(err)
		}
	}
	if !o.NoMeshWait {
		if err := waitMesh(ctx, st.Nodes, o.Nodes); err != nil {
			return fail(err)
		}
	}
	return st, write(st)
}

// startNode starts node i (initialising its directory the first time),
// bootstrapped to the nodes before it, and waits until its daemon answers.
// A node whose process started is returned even with an error, so that it
// is stopped.
func startNode(ctx context.Context, o Options, dir string, i int, before []Node) (Node, error) {
	p := filepath.Join(dir, fmt.Sprintf("node-%d", i))
	if _, err := os.Stat(filepath.Join(p, keyring.SecretFile)); err != nil {
		if _, err := node.Init(p, false); err != nil {
			return Node{}, err
		}
	}
	_ = os.Remove(filepath.Join(p, daemon.InfoFile))
	// The nodes share this machine's cores: each serves with its share (a
	// put or get it runs for its user still takes them all).
	procs := max(1, runtime.NumCPU()/o.Nodes)
	args := []string{"--path", p, "daemon", "--listen", "/ip4/127.0.0.1/tcp/0", "--procs", strconv.Itoa(procs)}
	if c, err := config.Load(p); err == nil && c.Network.SwarmKey == "" {
		args = append(args, "--listen", "/ip4/127.0.0.1/udp/0/quic-v1") // pnet is TCP only
	}
	for _, prev := range before {
		for _, a := range prev.Addrs {
			if strings.Contains(a, "/tcp/") {
				args = append(args, "--bootstrap", a)
			}
		}
	}
	for _, a := range o.Bootstrap {
		args = append(args, "--bootstrap", a)
	}
	logPath := filepath.Join(p, "daemon.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return Node{}, err
	}
	bin := o.Bin
	if b, ok := o.NodeBin[i]; ok {
		bin = b
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(append(os.Environ(), "UMBRA_PATH="+p), o.NodeEnv[i]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // outlives the CLI
	if err := cmd.Start(); err != nil {
		logf.Close()
		return Node{}, fmt.Errorf("testnet: start node %d: %w", i, err)
	}
	logf.Close()
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	n := Node{Index: i, UmbraPath: p, PID: cmd.Process.Pid, Log: logPath}
	info, err := waitInfo(ctx, p, cmd.Process.Pid, exited)
	if err != nil {
		return n, fmt.Errorf("testnet: node %d did not start: %w (see %s)", i, err, logPath)
	}
	n.PeerID, n.Socket, n.Addrs, n.Running = info.PeerID, info.Socket, info.Addrs, true
	return n, nil
}

// waitMesh waits until every node sees every other.
func waitMesh(ctx context.Context, nodes []Node, want int) error {
	for i := range nodes {
		for {
			s, err := status(ctx, nodes[i].UmbraPath)
			if err == nil && s.Peers >= want-1 {
				nodes[i].Peers = s.Peers
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("testnet: node %d sees %d of %d peers", i, s.Peers, want-1)
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	return nil
}

func waitInfo(ctx context.Context, dir string, pid int, exited <-chan struct{}) (daemon.Info, error) {
	for {
		info, err := daemon.ReadInfo(dir)
		if err == nil && info.PID == pid {
			if _, err := status(ctx, dir); err == nil {
				return info, nil
			}
		}
		select {
		case <-exited:
			return daemon.Info{}, errors.New("the daemon exited")
		case <-ctx.Done():
			return daemon.Info{}, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func status(ctx context.Context, dir string) (api.Status, error) {
	cl, err := api.Dial(dir)
	if err != nil {
		return api.Status{}, err
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return cl.Status(cctx)
}

func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	if err != nil {
		return false
	}
	// A zombie (killed, not yet reaped by its parent) is not running.
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err == nil {
		f := strings.Fields(string(raw))
		if len(f) > 2 && f[2] == "Z" {
			return false
		}
	}
	return true
}

// ours reports whether n's PID is still this node's daemon: alive, and its
// command line names the node directory (PIDs are recycled).
func ours(n Node) bool {
	if !alive(n.PID) {
		return false
	}
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", n.PID))
	return err == nil && strings.Contains(string(raw), n.UmbraPath)
}

func write(st State) error {
	raw, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(st.Dir, StateFile), raw, 0o600)
}

// Read reads a testnet's record.
func Read(dir string) (State, error) {
	var st State
	raw, err := os.ReadFile(filepath.Join(dir, StateFile))
	if err != nil {
		return st, fmt.Errorf("testnet: no testnet in %s (run 'umbra testnet up --dir %s')", dir, dir)
	}
	return st, json.Unmarshal(raw, &st)
}

// Status reads the record and checks each node: process alive, API up,
// peers seen.
func Status(ctx context.Context, dir string) (State, error) {
	st, err := Read(dir)
	if err != nil {
		return st, err
	}
	for i := range st.Nodes {
		n := &st.Nodes[i]
		n.Running = ours(*n)
		n.Peers = 0
		if n.Running {
			if s, err := status(ctx, n.UmbraPath); err == nil {
				n.Peers = s.Peers
			}
		}
	}
	return st, nil
}

// Down stops every node: SIGTERM, then SIGKILL after 15 s. Node directories
// stay (run up again to restart the same network).
func Down(dir string) error {
	st, err := Read(dir)
	if err != nil {
		return err
	}
	for _, n := range st.Nodes {
		if ours(n) {
			_ = syscall.Kill(n.PID, syscall.SIGTERM)
		}
	}
	deadline := time.Now().Add(15 * time.Second)
	for _, n := range st.Nodes {
		for ours(n) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if ours(n) {
			_ = syscall.Kill(n.PID, syscall.SIGKILL)
		}
	}
	for i := range st.Nodes {
		st.Nodes[i].Running = false
		st.Nodes[i].PID = 0 // never signal a recycled PID later
	}
	return write(st)
}
