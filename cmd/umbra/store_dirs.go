package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/umbra-store/umbra/internal/config"
	"github.com/umbra-store/umbra/internal/dirs"
	"github.com/umbra-store/umbra/internal/engine"
	"github.com/umbra-store/umbra/keyring"
)

// The folder operations of an offlineStore: the daemon's, run here.

func (s *offlineStore) Mkdir(ctx context.Context, path string, parents bool) (string, error) {
	return s.dirs.Mkdir(ctx, path, parents)
}

func (s *offlineStore) List(ctx context.Context, path string) ([]dirs.Entry, error) {
	return s.dirs.List(ctx, path)
}

func (s *offlineStore) ListRefs(ctx context.Context, path string) ([]dirs.Entry, error) {
	return s.dirs.ListRefs(ctx, path)
}

func (s *offlineStore) Chunks(ctx context.Context, capText string) ([]uint64, error) {
	c, err := keyring.ParseReadCap(capText)
	if err != nil {
		return nil, err
	}
	return s.eng.Chunks(ctx, c)
}

func (s *offlineStore) GetRange(ctx context.Context, capText string, off, length int64, w io.Writer) error {
	c, err := keyring.ParseReadCap(capText)
	if err != nil {
		return err
	}
	return s.eng.ReadRange(ctx, c, off, length, w)
}

func (s *offlineStore) Apply(ctx context.Context, path string, ops []dirs.Op) (map[string]string, error) {
	return s.dirs.Apply(ctx, path, ops)
}

func (s *offlineStore) PutData(ctx context.Context, r io.Reader) (string, uint64, error) {
	k, m, err := config.ParseShards(s.n.Config.Put.Shards)
	if err != nil {
		return "", 0, err
	}
	res, err := s.eng.Put(ctx, r, engine.PutOptions{K: k, M: m})
	if err != nil {
		return "", 0, err
	}
	return res.Cap.Encode(), res.Size, nil
}

func (s *offlineStore) PutFiles(ctx context.Context, files []*io.SectionReader) ([]string, error) {
	k, m, err := config.ParseShards(s.n.Config.Put.Shards)
	if err != nil {
		return nil, err
	}
	rs := make([]io.Reader, len(files))
	for i, f := range files {
		rs[i] = f
	}
	res, err := s.eng.PutFiles(ctx, engine.PutOptions{K: k, M: m}, rs)
	if err != nil {
		return nil, err
	}
	refs := make([]string, len(res))
	for i, r := range res {
		refs[i] = r.Cap.Encode()
	}
	return refs, nil
}

func (s *offlineStore) Remove(ctx context.Context, path string, recursive bool) error {
	return s.dirs.Remove(ctx, path, recursive)
}

func (s *offlineStore) Move(ctx context.Context, from, to string) error {
	return s.dirs.Move(ctx, from, to)
}

func (s *offlineStore) Link(ctx context.Context, capText, path string) error {
	return s.dirs.Link(ctx, capText, path)
}

func (s *offlineStore) Share(ctx context.Context, path, as string) (string, error) {
	return s.dirs.Share(ctx, path, as)
}

func (s *offlineStore) ShareExpiring(ctx context.Context, path string, d time.Duration) (string, error) {
	return s.dirs.ShareExpiring(ctx, path, d)
}

// rootOf opens dir as an os.Root.
func rootOf(dir *os.File) (*os.Root, error) {
	return os.OpenRoot(fmt.Sprintf("/proc/self/fd/%d", dir.Fd()))
}

func (s *offlineStore) PutTree(ctx context.Context, dir *os.File, path string, progress func(bytes, files int64)) (dirs.TreeResult, error) {
	root, err := rootOf(dir)
	if err != nil {
		return dirs.TreeResult{}, err
	}
	defer root.Close()
	return s.dirs.PutTree(ctx, root, path, engine.PutOptions{}, treeCallback(progress))
}

func (s *offlineStore) GetTree(ctx context.Context, path string, dir *os.File, o dirs.GetOptions, progress func(bytes, files int64)) (dirs.TreeResult, error) {
	root, err := rootOf(dir)
	if err != nil {
		return dirs.TreeResult{}, err
	}
	defer root.Close()
	return s.dirs.GetTree(ctx, path, root, o, treeCallback(progress))
}

func treeCallback(progress func(bytes, files int64)) func(dirs.Progress) {
	if progress == nil {
		return nil
	}
	return func(p dirs.Progress) { progress(p.Bytes, p.Files) }
}
