package dirs

import (
	"context"

	"github.com/umbra-store/umbra/internal/format"
	"github.com/umbra-store/umbra/keyring"
)

// maxAncestry bounds how far back a writer follows a snapshot's parents to
// tell whether an older record's version is already in the newest.
const maxAncestry = 16

// resolve reads the newest version of folder c, as a reader.
func (s *Service) resolve(ctx context.Context, c keyring.DirReadCap) (*version, error) {
	return s.resolveAs(ctx, c, nil)
}

// resolveAs reads the newest version of folder c. Versions of the highest
// seq that writers published at once are merged. A writer (w set) also
// merges the versions of lower seqs that the newest does not descend from
// (writers apart that each won with the holders they saw), against their
// common parent, found within maxAncestry versions.
func (s *Service) resolveAs(ctx context.Context, c keyring.DirReadCap, w *keyring.DirWriteCap) (*version, error) {
	recs, err := s.recs.Resolve(ctx, c.ID())
	if err != nil {
		return nil, err
	}
	if len(recs) == 0 {
		return nil, ErrNoFolder
	}
	best := recs[0]
	ptr, err := best.Open(c)
	if err != nil {
		return nil, err
	}
	snap, err := s.readSnapshot(ctx, ptr.Snapshot)
	if err != nil {
		return nil, err
	}
	v := &version{rec: best, snap: snap, ptr: ptr}
	var line *ancestry // followed only when an older version must be placed
	if w != nil {
		line = s.ancestors(ctx, *w, ptr.Snapshot.Root(), snap)
	}
	for _, r := range recs[1:] {
		p, err := r.Open(c)
		if err != nil || p.Snapshot.Root() == ptr.Snapshot.Root() {
			continue // signed by the folder but not openable, or the same version
		}
		if r.Seq() != best.Seq() && (line == nil || line.has(p.Snapshot.Root())) {
			continue // older, and in the newest's past (or a reader: not followed)
		}
		other, err := s.readSnapshot(ctx, p.Snapshot)
		if err != nil {
			s.o.Log.Warn("folder: a diverging version is unreadable", "err", err)
			continue
		}
		var base *format.Snapshot
		if line != nil {
			base = line.common(ctx, s, *w, p.Snapshot.Root(), other)
			if base == nil && r.Seq() != best.Seq() {
				// No common past within reach: an old version, not a
				// branch; taking its names back would undo removals.
				continue
			}
		}
		v.snap, v.merged = merge3(base, v.snap, other), true
	}
	return v, nil
}

// ancestry is a version's past, followed lazily: the roots of its
// snapshots' parents, each with the snapshot once read (nil before).
type ancestry struct {
	ctx     context.Context
	s       *Service
	w       keyring.DirWriteCap
	roots   map[[32]byte]*format.Snapshot
	tip     *format.Snapshot // the oldest snapshot read; its parent is next
	pending *format.Parent   // a parent whose root is known, not yet read
	steps   int
}

func (s *Service) ancestors(ctx context.Context, w keyring.DirWriteCap, root [32]byte, snap *format.Snapshot) *ancestry {
	return &ancestry{ctx: ctx, s: s, w: w, roots: map[[32]byte]*format.Snapshot{root: snap}, tip: snap}
}

// step learns one more root of the line, or reads one more snapshot;
// false at the end of the line or of maxAncestry.
func (a *ancestry) step() bool {
	if a.steps >= 2*maxAncestry {
		return false
	}
	a.steps++
	if a.pending != nil {
		p := a.pending
		a.pending = nil
		snap, err := a.s.readSnapshot(a.ctx, a.w.OpenParent(p.Root, p.SealedKey))
		if err != nil {
			a.tip = nil
			return false
		}
		a.roots[p.Root], a.tip = snap, snap
		return true
	}
	if a.tip == nil || a.tip.Parent == nil {
		return false
	}
	if _, seen := a.roots[a.tip.Parent.Root]; seen {
		return false // a loop: parents are hashes, so only a forged one
	}
	a.pending = a.tip.Parent
	a.roots[a.pending.Root] = nil
	return true
}

// has reports whether root is in the line, following it as far as needed.
func (a *ancestry) has(root [32]byte) bool {
	for {
		if _, ok := a.roots[root]; ok {
			return true
		}
		if !a.step() {
			return false
		}
	}
}

// snapshot returns the line's snapshot of root, reading it if needed.
func (a *ancestry) snapshot(root [32]byte) *format.Snapshot {
	for a.roots[root] == nil {
		if !a.step() {
			return nil
		}
	}
	return a.roots[root]
}

// common returns the newest snapshot of the line that other's line (other
// and its parents, at most maxAncestry) passes through: the base of a
// three-way merge. Nil if none is found.
func (a *ancestry) common(ctx context.Context, s *Service, w keyring.DirWriteCap, _ [32]byte, other *format.Snapshot) *format.Snapshot {
	cur := other
	for i := 0; cur != nil && cur.Parent != nil && i < maxAncestry; i++ {
		pr := cur.Parent.Root
		if a.has(pr) {
			return a.snapshot(pr)
		}
		next, err := s.readSnapshot(ctx, w.OpenParent(pr, cur.Parent.SealedKey))
		if err != nil {
			return nil
		}
		cur = next
	}
	return nil
}
