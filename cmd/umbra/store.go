package main

import (
	"context"
	"io"
	"os"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/umbra-store/umbra/internal/api"
	"github.com/umbra-store/umbra/internal/config"
	"github.com/umbra-store/umbra/internal/engine"
	"github.com/umbra-store/umbra/internal/node"
	"github.com/umbra-store/umbra/keyring"
)

// store is what put and get talk to: the node's daemon through its API, or
// with --offline the node directory itself (one node, no network, no
// daemon running). openStore is the one place that chooses.
type store interface {
	// Put stores in (size bytes, -1 unknown), calling progress with the
	// bytes consumed so far.
	Put(ctx context.Context, in io.Reader, size int64, o api.PutOptions, progress func(int64)) (api.PutResult, error)
	Stat(ctx context.Context, capText string) (api.Stat, error)
	// Get writes the file to w, calling progress with the bytes written.
	Get(ctx context.Context, capText string, w io.Writer, progress func(int64)) error
	Close() error
}

// openStore opens the store of the node at --path: through its daemon, or
// with --offline directly.
func openStore(c *cli.Context) (store, error) {
	if c.Bool("offline") {
		n, err := node.Open(c.String("path"), logger(c))
		if err != nil {
			return nil, err
		}
		return &offlineStore{n: n, eng: engine.New(n.Store, n.Keys.Secrets, engine.WithLogger(logger(c)))}, nil
	}
	cl, err := api.Dial(c.String("path"))
	if err != nil {
		return nil, err
	}
	return daemonStore{cl}, nil
}

// daemonStore is the daemon, through its API. A file or pipe is handed to
// the daemon, which reads or writes it itself (one copy fewer); a terminal
// stays with this process: the daemon must not read what the user types
// after a cancelled put, nor block on a terminal the user paused.
type daemonStore struct{ cl *api.Client }

func handOver(x any) (*os.File, bool) {
	f, ok := x.(*os.File)
	return f, ok && !term.IsTerminal(int(f.Fd()))
}

func (d daemonStore) Put(ctx context.Context, in io.Reader, _ int64, o api.PutOptions, progress func(int64)) (api.PutResult, error) {
	if f, ok := handOver(in); ok {
		return d.cl.PutFile(ctx, f, o, progress)
	}
	if progress != nil {
		in = io.TeeReader(in, &counter{progress: progress})
	}
	return d.cl.Put(ctx, in, o)
}

func (d daemonStore) Stat(ctx context.Context, capText string) (api.Stat, error) {
	return d.cl.Stat(ctx, capText)
}

func (d daemonStore) Get(ctx context.Context, capText string, w io.Writer, progress func(int64)) error {
	if f, ok := handOver(w); ok {
		return d.cl.GetTo(ctx, capText, f, progress)
	}
	if progress != nil {
		w = io.MultiWriter(w, &counter{progress: progress})
	}
	return d.cl.Get(ctx, capText, w)
}

func (daemonStore) Close() error { return nil }

// offlineStore is the node directory, opened by this process.
type offlineStore struct {
	n   *node.Node
	eng *engine.Engine
}

func (s *offlineStore) Put(ctx context.Context, in io.Reader, _ int64, o api.PutOptions, progress func(int64)) (api.PutResult, error) {
	shards := o.Shards
	if shards == "" {
		shards = s.n.Config.Put.Shards
	}
	k, m, err := config.ParseShards(shards)
	if err != nil {
		return api.PutResult{}, usageError{err}
	}
	res, err := s.eng.Put(ctx, in, engine.PutOptions{K: k, M: m, RandomKey: o.RandomKey, Name: o.Name, Progress: progress})
	if err != nil {
		return api.PutResult{}, err
	}
	return api.PutResult{Cap: res.Cap.Encode(), Size: res.Size, Chunks: res.Chunks, Warnings: res.Warnings}, nil
}

func (s *offlineStore) Stat(ctx context.Context, capText string) (api.Stat, error) {
	rc, err := keyring.ParseReadCap(capText)
	if err != nil {
		return api.Stat{}, err
	}
	info, err := s.eng.Stat(ctx, rc)
	if err != nil {
		return api.Stat{}, err
	}
	return api.Stat{Size: info.Size, Name: info.Name, K: info.K, M: info.M}, nil
}

func (s *offlineStore) Get(ctx context.Context, capText string, w io.Writer, progress func(int64)) error {
	rc, err := keyring.ParseReadCap(capText)
	if err != nil {
		return err
	}
	if progress != nil {
		w = io.MultiWriter(w, &counter{progress: progress})
	}
	return s.eng.Get(ctx, rc, w)
}

func (s *offlineStore) Close() error { return s.n.Close() }

// counter calls progress with the bytes written through it so far.
type counter struct {
	n        int64
	progress func(int64)
}

func (c *counter) Write(b []byte) (int, error) {
	c.n += int64(len(b))
	c.progress(c.n)
	return len(b), nil
}
