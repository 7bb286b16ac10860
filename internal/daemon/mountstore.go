package daemon

import (
	"context"
	"io"

	"github.com/umbra-store/umbra/fuse"
	"github.com/umbra-store/umbra/internal/config"
	"github.com/umbra-store/umbra/internal/dirs"
	"github.com/umbra-store/umbra/internal/engine"
	"github.com/umbra-store/umbra/internal/xfer"
	"github.com/umbra-store/umbra/keyring"
)

// MountStore is the store a mount reads and writes through: an engine
// and its folders (the daemon's, or with --offline the node's own). In
// the daemon each call is a user operation (every core in use), counted
// in its totals.
type MountStore struct {
	eng     *engine.Engine
	dirs    *dirs.Service
	shards  func() (k, m int, err error)
	working func() func()
	totals  *xfer.Counters
}

var (
	_ fuse.Lender   = (*MountStore)(nil)
	_ fuse.Store    = (*MountStore)(nil)
	_ fuse.Writer   = (*MountStore)(nil)
	_ fuse.Resolver = (*MountStore)(nil)
)

// NewMountStore is the store of a mount served outside a daemon (umbra
// mount --offline): files stored as shards says ("K+M").
func NewMountStore(eng *engine.Engine, d *dirs.Service, shards string) *MountStore {
	return &MountStore{eng: eng, dirs: d, working: func() func() { return func() {} },
		shards: func() (int, int, error) { return config.ParseShards(shards) }}
}

func (s *MountStore) ListRefs(ctx context.Context, folder string) ([]dirs.Entry, error) {
	defer s.working()()
	return s.dirs.ListRefs(ctx, folder)
}

func (s *MountStore) Chunks(ctx context.Context, file string) ([]uint64, error) {
	c, err := keyring.ParseReadCap(file)
	if err != nil {
		return nil, err
	}
	defer s.working()()
	return s.eng.Chunks(ctx, c)
}

func (s *MountStore) GetRange(ctx context.Context, file string, off, length int64, w io.Writer) error {
	c, err := keyring.ParseReadCap(file)
	if err != nil {
		return err
	}
	defer s.working()()
	return s.eng.ReadRange(xfer.With(ctx, s.totals), c, off, length, w)
}

func (s *MountStore) ReleaseChunk(buf []byte) { s.eng.ReleaseChunk(buf) }

func (s *MountStore) PutData(ctx context.Context, r io.Reader) (string, uint64, error) {
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

func (s *MountStore) PutFiles(ctx context.Context, files []*io.SectionReader) ([]string, error) {
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

func (s *MountStore) Apply(ctx context.Context, folder string, ops []dirs.Op) (map[string]string, error) {
	defer s.working()()
	return s.dirs.Apply(ctx, folder, ops)
}

func (s *MountStore) Share(ctx context.Context, path, as string) (string, error) {
	return s.dirs.Share(ctx, path, as)
}

func (s *MountStore) FileInfo(ctx context.Context, capText string) (string, uint64, error) {
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
