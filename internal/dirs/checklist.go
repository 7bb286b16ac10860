package dirs

import (
	"bytes"
	"context"
	"fmt"

	"github.com/umbra-store/umbra/internal/engine"
	"github.com/umbra-store/umbra/internal/format"
	"github.com/umbra-store/umbra/keyring"
)

// putCheckList stores the check list of snap (the verify capabilities of
// its files of their own and of its folders) and returns its capability;
// zero when snap has none.
func (s *Service) putCheckList(ctx context.Context, snap *format.Snapshot) (keyring.ReadCap, error) {
	var l format.CheckList
	for i := range snap.Entries {
		switch e := &snap.Entries[i]; e.Kind {
		case format.EntryFile:
			l.Files = append(l.Files, e.File.Verify())
		case format.EntryDir:
			l.Dirs = append(l.Dirs, e.Dir.Verify())
		}
	}
	if len(l.Files)+len(l.Dirs) == 0 {
		return keyring.ReadCap{}, nil
	}
	res, err := s.eng.Put(ctx, bytes.NewReader(l.Encode()), engine.PutOptions{K: s.o.K, M: s.o.M})
	if err != nil {
		return keyring.ReadCap{}, fmt.Errorf("folder check list: %w", err)
	}
	return res.Cap, nil
}

// readCheckList fetches and decodes a check list.
func (s *Service) readCheckList(ctx context.Context, c keyring.ReadCap) (*format.CheckList, error) {
	b, err := s.readBounded(ctx, c, format.MaxCheckList, "folder check list", format.ErrCheckList)
	if err != nil {
		return nil, err
	}
	return format.DecodeCheckList(b)
}

// readBounded reads the file c (what it is) whole, refusing one over max
// bytes, with tooBig, before reading it.
func (s *Service) readBounded(ctx context.Context, c keyring.ReadCap, max uint64, what string, tooBig error) ([]byte, error) {
	info, err := s.eng.Stat(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if info.Size > max {
		return nil, fmt.Errorf("%w: %s of %d bytes", tooBig, what, info.Size)
	}
	var buf bytes.Buffer
	buf.Grow(int(info.Size))
	if err := s.eng.Get(ctx, c, &buf); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return buf.Bytes(), nil
}

// verifyRoots is Roots for a folder's verify capability: every folder's
// snapshots and check lists, of every version the record holders keep,
// and every file of its own, reached through the check lists.
func (s *Service) verifyRoots(ctx context.Context, top keyring.DirVerifyCap) ([]keyring.VerifyCap, error) {
	var out []keyring.VerifyCap
	seen := map[[32]byte]bool{} // files' roots and folders' ids
	add := func(v keyring.VerifyCap) {
		if !seen[v.Root()] {
			seen[v.Root()] = true
			out = append(out, v)
		}
	}
	queue := []keyring.DirVerifyCap{top}
	for len(queue) > 0 {
		d := queue[0]
		queue = queue[1:]
		if seen[d.ID()] {
			continue
		}
		seen[d.ID()] = true
		recs, err := s.recs.Resolve(ctx, d.ID())
		if err != nil {
			return out, err
		}
		if len(recs) == 0 {
			return out, ErrNoFolder
		}
		for _, r := range recs {
			snap, check, err := r.OpenVerify(d)
			if err != nil {
				continue // signed by the folder, not openable: not its
			}
			add(snap)
			if check.Root() == ([32]byte{}) {
				continue
			}
			add(check.Verify())
			l, err := s.readCheckList(ctx, check)
			if err != nil {
				return out, err
			}
			for _, f := range l.Files {
				add(f)
			}
			queue = append(queue, l.Dirs...)
		}
		if len(out)+len(queue) > MaxDeep {
			return out, fmt.Errorf("dirs: the tree holds more than %d files and folders", MaxDeep)
		}
	}
	return out, nil
}
