package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/umbra-store/umbra/internal/dirs"
	"github.com/umbra-store/umbra/internal/engine"
)

// The folder operations of an offlineStore: the daemon's, run here.

func (s *offlineStore) Mkdir(ctx context.Context, path string, parents bool) (string, error) {
	return s.dirs.Mkdir(ctx, path, parents)
}

func (s *offlineStore) List(ctx context.Context, path string) ([]dirs.Entry, error) {
	return s.dirs.List(ctx, path)
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
