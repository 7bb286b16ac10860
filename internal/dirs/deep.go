package dirs

import (
	"context"
	"fmt"

	"github.com/umbra-store/umbra/keyring"
)

// MaxDeep bounds the files and folders a deep walk reaches.
const MaxDeep = 1 << 20

// Roots returns what a tree is made of, as verify capabilities: a file's
// own, or for a folder path every folder's current snapshot and check
// list and every file of its own under it (inline files live in their
// folder's snapshot), each folder walked once. A folder's verify
// capability walks the check lists instead (verifyRoots). A check or
// repair of each keeps the whole tree alive.
func (s *Service) Roots(ctx context.Context, path string) ([]keyring.VerifyCap, error) {
	t, err := s.parse(path)
	if err != nil {
		return nil, err
	}
	n, err := s.walk(ctx, t)
	if err != nil {
		return nil, err
	}
	switch {
	case n.verify != nil:
		switch vc := n.verify.(type) {
		case keyring.VerifyCap:
			return []keyring.VerifyCap{vc}, nil
		case keyring.DirVerifyCap:
			return s.verifyRoots(ctx, vc)
		}
		return nil, fmt.Errorf("%w: this capability names nothing to walk", ErrVerifyOnly)
	case n.file != nil:
		return []keyring.VerifyCap{n.file.Verify()}, nil
	case !n.isDir():
		return nil, nil // an inline file: in its folder's snapshot
	}
	var out []keyring.VerifyCap
	seen := map[[32]byte]bool{}
	queue := []*node{n}
	for len(queue) > 0 {
		d := queue[0]
		queue = queue[1:]
		if seen[d.dir.ID()] {
			continue
		}
		seen[d.dir.ID()] = true
		v, err := s.resolve(ctx, *d.dir)
		if err != nil {
			return out, err
		}
		out = append(out, v.ptr.Snapshot.Verify())
		if v.ptr.Check.Root() != ([32]byte{}) {
			out = append(out, v.ptr.Check.Verify())
		}
		for i := range v.snap.Entries {
			c := child(d, &v.snap.Entries[i])
			switch {
			case c.dir != nil:
				queue = append(queue, c)
			case c.file != nil:
				out = append(out, c.file.Verify())
			}
		}
		if len(out)+len(queue) > MaxDeep {
			return out, fmt.Errorf("dirs: the tree holds more than %d files and folders", MaxDeep)
		}
	}
	return out, nil
}
