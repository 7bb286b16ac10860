package dirs

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"time"

	"github.com/umbra-store/umbra/internal/engine"
	"github.com/umbra-store/umbra/internal/format"
	"github.com/umbra-store/umbra/internal/kind"
	"github.com/umbra-store/umbra/keyring"
)

// ShareExpiring stores a copy of the file or folder tree at path whose
// every part expires d from now, and returns the copy's read capability:
// a link that stops working then, while the original stays. The copy is
// under random keys (it shares no block with the original), its leases
// are never renewed (nothing lists it for maintenance), and a folder's
// copies are new folders, read-only, whose records end then too.
func (s *Service) ShareExpiring(ctx context.Context, path string, d time.Duration) (string, error) {
	if d < time.Second {
		return "", kind.New(kind.Usage, "dirs: an expiring share lasts at least 1s")
	}
	t, err := s.parse(path)
	if err != nil {
		return "", err
	}
	n, err := s.walk(ctx, t)
	if err != nil {
		return "", err
	}
	x := expiring{s: s, until: s.o.Now().Add(d), seen: map[[32]byte]bool{}}
	switch {
	case n.verify != nil:
		return "", ErrVerifyOnly
	case n.isDir():
		c, err := x.folder(ctx, n)
		return c.Encode(), err
	case n.file != nil:
		c, err := x.file(ctx, *n.file, "")
		return c.Encode(), err
	}
	c, err := x.put(ctx, bytes.NewReader(n.inline), "")
	return c.Encode(), err
}

// expiring makes the parts of an expiring copy.
type expiring struct {
	s     *Service
	until time.Time
	seen  map[[32]byte]bool // folders copied (a folder linked into itself is copied once)
	parts int
}

func (x *expiring) put(ctx context.Context, r io.Reader, name string) (keyring.ReadCap, error) {
	if x.parts++; x.parts > MaxDeep {
		return keyring.ReadCap{}, fmt.Errorf("dirs: more than %d parts to copy", MaxDeep)
	}
	o := engine.PutOptions{K: x.s.o.K, M: x.s.o.M, RandomKey: true, Name: name, Expiry: uint64(x.until.Unix())}
	res, err := x.s.eng.Put(ctx, r, o)
	if err != nil {
		return keyring.ReadCap{}, fmt.Errorf("dirs: expiring copy: %w", err)
	}
	return res.Cap, nil
}

// file copies a file of its own, streamed.
func (x *expiring) file(ctx context.Context, c keyring.ReadCap, name string) (keyring.ReadCap, error) {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(x.s.eng.Get(ctx, c, pw)) }()
	defer pr.Close()
	return x.put(ctx, pr, name)
}

// folder copies the folder n and everything under it into new folders.
func (x *expiring) folder(ctx context.Context, n *node) (keyring.DirReadCap, error) {
	x.seen[n.dir.ID()] = true
	v, err := x.s.resolve(ctx, *n.dir)
	if err != nil {
		return keyring.DirReadCap{}, err
	}
	snap := &format.Snapshot{}
	for i := range v.snap.Entries {
		e := v.snap.Entries[i]
		ne := format.DirEntry{Name: e.Name, Kind: e.Kind, Mode: e.Mode, MTime: e.MTime, Size: e.Size, Data: e.Data}
		switch c := child(n, &e); {
		case c.dir != nil:
			if x.seen[c.dir.ID()] {
				continue // a cycle: the copy leaves the link out
			}
			if ne.Dir, err = x.folder(ctx, c); err != nil {
				return keyring.DirReadCap{}, err
			}
		case c.file != nil:
			if ne.File, err = x.file(ctx, *c.file, ""); err != nil {
				return keyring.DirReadCap{}, err
			}
		}
		snap.Entries = append(snap.Entries, ne)
	}
	plain, err := snap.Encode()
	if err != nil {
		return keyring.DirReadCap{}, err
	}
	sc, err := x.put(ctx, bytes.NewReader(plain), "")
	if err != nil {
		return keyring.DirReadCap{}, err
	}
	w := keyring.GenerateDirWriteCap()
	rec, err := format.DecodeRecord(format.SignRecord(w, 1, x.until, format.Pointer{Snapshot: sc}))
	if err != nil {
		return keyring.DirReadCap{}, fmt.Errorf("dirs: own record: %w", err)
	}
	res, err := x.s.recs.Publish(ctx, rec)
	if err != nil {
		return keyring.DirReadCap{}, err
	}
	if res.Accepted == 0 {
		return keyring.DirReadCap{}, fmt.Errorf("dirs: no holder kept the copy's record (%d asked)", res.Holders)
	}
	return w.Read(), nil
}
