package daemon

import (
	"context"
	"io"

	"github.com/umbra-store/umbra/fuse"
	"github.com/umbra-store/umbra/internal/dirs"
	"github.com/umbra-store/umbra/internal/engine"
	"github.com/umbra-store/umbra/internal/xfer"
	"github.com/umbra-store/umbra/keyring"
)

// mountStore is what a mount reads and writes through: the daemon's
// engine and folders, each call a user operation (every core in use),
// counted in the daemon's totals.
type mountStore struct {
	eng     *engine.Engine
	dirs    *dirs.Service
	shards  func() (k, m int, err error)
	working func() func()
	totals  *xfer.Counters
}

var (
	_ fuse.Lender   = (*mountStore)(nil)
	_ fuse.Store    = (*mountStore)(nil)
	_ fuse.Writer   = (*mountStore)(nil)
	_ fuse.Resolver = (*mountStore)(nil)
)

func (s *mountStore) ListRefs(ctx context.Context, folder string) ([]dirs.Entry, error) {
	defer s.working()()
	return s.dirs.ListRefs(ctx, folder)
}

func (s *mountStore) Chunks(ctx context.Context, file string) ([]uint64, error) {
	c, err := keyring.ParseReadCap(file)
	if err != nil {
		return nil, err
	}
	defer s.working()()
	return s.eng.Chunks(ctx, c)
}

func (s *mountStore) GetRange(ctx context.Context, file string, off, length int64, w io.Writer) error {
	c, err := keyring.ParseReadCap(file)
	if err != nil {
		return err
	}
	defer s.working()()
	return s.eng.ReadRange(xfer.With(ctx, s.totals), c, off, length, w)
}

func (s *mountStore) ReleaseChunk(buf []byte) { s.eng.ReleaseChunk(buf) }

func (s *mountStore) PutData(ctx context.Context, r io.Reader) (string, uint64, error) {
	k, m, err := s.shards()
	if err != nil {
		return "", 0, err
	}
	defer s.working()()
	res, err := s.eng.Put(xfer.With(ctx, s.totals), r, engine.PutOptions{K: k, M: m})
	if err != nil {
		return "", 0, err
	}
	return res.Cap.Encode(), res.Size, nil
}

func (s *mountStore) PutFiles(ctx context.Context, files []*io.SectionReader) ([]string, error) {
	k, m, err := s.shards()
	if err != nil {
		return nil, err
	}
	rs := make([]io.Reader, len(files))
	for i, f := range files {
		rs[i] = f
	}
	defer s.working()()
	res, err := s.eng.PutFiles(xfer.With(ctx, s.totals), engine.PutOptions{K: k, M: m}, rs)
	if err != nil {
		return nil, err
	}
	refs := make([]string, len(res))
	for i, r := range res {
		refs[i] = r.Cap.Encode()
	}
	return refs, nil
}

func (s *mountStore) Apply(ctx context.Context, folder string, ops []dirs.Op) (map[string]string, error) {
	defer s.working()()
	return s.dirs.Apply(ctx, folder, ops)
}

func (s *mountStore) Share(ctx context.Context, path, as string) (string, error) {
	return s.dirs.Share(ctx, path, as)
}

func (s *mountStore) FileInfo(ctx context.Context, capText string) (string, uint64, error) {
	f, err := s.dirs.OpenFile(ctx, capText)
	if err != nil {
		return "", 0, err
	}
	if f.Cap == nil {
		return f.Name, uint64(len(f.Inline)), nil
	}
	info, err := s.eng.Stat(ctx, *f.Cap)
	if info.Name == "" {
		info.Name = f.Name
	}
	return info.Name, info.Size, err
}
