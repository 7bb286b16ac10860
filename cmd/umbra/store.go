package main

import (
	"context"
	"io"
	"os"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/umbra-store/umbra/dht"
	"github.com/umbra-store/umbra/internal/api"
	"github.com/umbra-store/umbra/internal/config"
	"github.com/umbra-store/umbra/internal/dirs"
	"github.com/umbra-store/umbra/internal/engine"
	"github.com/umbra-store/umbra/internal/network"
	"github.com/umbra-store/umbra/internal/node"
	"github.com/umbra-store/umbra/internal/xfer"
)

// store is what put and get talk to: the node's daemon through its API, or
// with --offline the node directory itself (one node, no network, no
// daemon running). openStore is the one place that chooses.
type store interface {
	// Put stores in (size bytes, -1 unknown), calling progress with the
	// bytes consumed so far.
	Put(ctx context.Context, in io.Reader, size int64, o api.PutOptions, progress func(int64)) (api.PutResult, error)
	Stat(ctx context.Context, capText string) (api.Stat, error)
	// Get writes the file to w, calling progress with the bytes written,
	// and counts where its shards came from (none when the daemon could
	// not be handed w: a terminal).
	Get(ctx context.Context, capText string, w io.Writer, progress func(int64)) (xfer.Report, error)
	Close() error
	folders
}

// folders are the folder operations (internal/dirs; paths ALIAS:a/b or
// CAP/a/b).
type folders interface {
	Mkdir(ctx context.Context, path string, parents bool) (string, error)
	List(ctx context.Context, path string) ([]dirs.Entry, error)
	Remove(ctx context.Context, path string, recursive bool) error
	Move(ctx context.Context, from, to string) error
	Link(ctx context.Context, capText, path string) error
	Share(ctx context.Context, path, as string) (string, error)
	ShareExpiring(ctx context.Context, path string, d time.Duration) (string, error)
	PutTree(ctx context.Context, dir *os.File, path string, progress func(bytes, files int64)) (dirs.TreeResult, error)
	GetTree(ctx context.Context, path string, dir *os.File, o dirs.GetOptions, progress func(bytes, files int64)) (dirs.TreeResult, error)
}

// openStore opens the store of the node at --path: through its daemon, or
// with --offline directly.
func openStore(c *cli.Context) (store, error) {
	if c.Bool("offline") {
		n, err := node.Open(c.String("path"), logger(c))
		if err != nil {
			return nil, err
		}
		s, err := newOfflineStore(c, n)
		if err != nil {
			return nil, err
		}
		return s, nil

	}
	cl, err := api.Dial(c.String("path"))
	if err != nil {
		return nil, err
	}
	return daemonStore{cl}, nil
}

// newOfflineStore is the node directory n, opened by this process; its
// folders' records are kept in its own store (it is their one holder).
func newOfflineStore(c *cli.Context, n *node.Node) (*offlineStore, error) {
	eng := engine.New(n.Store, n.Keys.Secrets, engine.WithLogger(logger(c)))
	k, m, err := config.ParseShards(n.Config.Put.Shards)
	if err != nil {
		n.Close()
		return nil, err
	}
	validity, _, _, err := n.Config.Folders.Durations()
	if err != nil {
		n.Close()
		return nil, err
	}
	recs := network.LocalFolders{K: dht.NewKeeper(n.Store.Datastore())}
	d := dirs.New(eng, recs, node.OpenAliases(n.Path), dirs.Options{K: k, M: m, Validity: validity, Log: logger(c)})
	return &offlineStore{n: n, eng: eng, dirs: d}, nil
}

// daemonStore is the daemon, through its API. A file or pipe is handed to
// the daemon, which reads or writes it itself (one copy fewer); a terminal
// stays with this process: the daemon must not read what the user types
// after a cancelled put, nor block on a terminal the user paused.
type daemonStore struct{ *api.Client }

func handOver(x any) (*os.File, bool) {
	f, ok := x.(*os.File)
	return f, ok && !term.IsTerminal(int(f.Fd()))
}

func (d daemonStore) Put(ctx context.Context, in io.Reader, _ int64, o api.PutOptions, progress func(int64)) (api.PutResult, error) {
	if f, ok := handOver(in); ok {
		return d.Client.PutFile(ctx, f, o, progress)
	}
	if progress != nil {
		in = io.TeeReader(in, &counter{progress: progress})
	}
	return d.Client.Put(ctx, in, o)
}

func (d daemonStore) Stat(ctx context.Context, capText string) (api.Stat, error) {
	return d.Client.Stat(ctx, capText)
}

func (d daemonStore) Get(ctx context.Context, capText string, w io.Writer, progress func(int64)) (xfer.Report, error) {
	if f, ok := handOver(w); ok {
		res, err := d.Client.GetTo(ctx, capText, f, progress)
		return res.Stats, err
	}
	if progress != nil {
		w = io.MultiWriter(w, &counter{progress: progress})
	}
	return xfer.Report{}, d.Client.Get(ctx, capText, w)
}

func (daemonStore) Close() error { return nil }

// offlineStore is the node directory, opened by this process.
type offlineStore struct {
	n    *node.Node
	eng  *engine.Engine
	dirs *dirs.Service
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
	eo := api.SelfDestruct(engine.PutOptions{K: k, M: m, RandomKey: o.RandomKey, Name: o.Name, Progress: progress}, o.Expire)
	xc := new(xfer.Counters)
	ctx = xfer.With(ctx, xc)
	if o.Path != "" {
		e, err := s.dirs.PutFile(ctx, in, o.Path, o.Name, dirs.FileMeta{Mode: o.Mode, MTime: o.MTime}, eo)
		rep := xc.Report()
		return api.PutResult{Size: e.Size, Entry: &e, Stats: &rep}, err
	}
	res, err := s.eng.Put(ctx, in, eo)
	if err != nil {
		return api.PutResult{}, err
	}
	rep := xc.Report()
	if eo.Expiry == 0 { // kept alive by the daemon's maintenance
		if err := node.OpenMaintained(s.n.Path).Add(res.Cap.Verify().Encode(), "put"); err != nil {
			return api.PutResult{}, err
		}
	}
	return api.PutResult{Cap: res.Cap.Encode(), Size: res.Size, Chunks: res.Chunks, Warnings: res.Warnings, Stats: &rep}, nil
}

func (s *offlineStore) Stat(ctx context.Context, capText string) (api.Stat, error) {
	f, err := s.dirs.OpenFile(ctx, capText)
	if err != nil {
		return api.Stat{}, err
	}
	if f.Cap == nil {
		return api.Stat{Size: uint64(len(f.Inline)), Name: f.Name}, nil
	}
	info, err := s.eng.Stat(ctx, *f.Cap)
	if err != nil {
		return api.Stat{}, err
	}
	if info.Name == "" {
		info.Name = f.Name
	}
	return api.Stat{Size: info.Size, Name: info.Name, K: info.K, M: info.M}, nil
}

func (s *offlineStore) Get(ctx context.Context, capText string, w io.Writer, progress func(int64)) (xfer.Report, error) {
	f, err := s.dirs.OpenFile(ctx, capText)
	if err != nil {
		return xfer.Report{}, err
	}
	if progress != nil {
		w = io.MultiWriter(w, &counter{progress: progress})
	}
	if f.Cap == nil {
		_, err := w.Write(f.Inline)
		return xfer.Report{}, err
	}
	xc := new(xfer.Counters)
	err = s.eng.Get(xfer.With(ctx, xc), *f.Cap, w)
	return xc.Report(), err
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
