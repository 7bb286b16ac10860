package dirs

import (
	"context"
	"slices"

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
			var baseRoot [32]byte
			base, baseRoot = line.common(ctx, s, *w, other)
			if base == nil && r.Seq() != best.Seq() {
				// No common past within reach: an old version, not a
				// branch; taking its names back would undo removals.
				continue
			}
			if base != nil {
				var left bool
				if other, left = line.unseen(ptr.Snapshot.Root(), baseRoot, base, other); !left {
					continue // every change of it is in the line: merged before
				}
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
// and its parents, at most maxAncestry) passes through, and its root: the
// base of a three-way merge. Nil if none is found.
func (a *ancestry) common(ctx context.Context, s *Service, w keyring.DirWriteCap, other *format.Snapshot) (*format.Snapshot, [32]byte) {
	cur := other
	for i := 0; cur != nil && cur.Parent != nil && i < maxAncestry; i++ {
		pr := cur.Parent.Root
		if a.has(pr) {
			return a.snapshot(pr), pr
		}
		next, err := s.readSnapshot(ctx, w.OpenParent(pr, cur.Parent.SealedKey))
		if err != nil {
			return nil, [32]byte{}
		}
		cur = next
	}
	return nil, [32]byte{}
}

// unseen returns base with the changes other made to it that the line
// since base (from head) has not seen, and whether there are any. A change
// the line holds was merged before (a merge names one parent: the branch
// it took in stays off the line) or made there too; if the head lacks it
// now, the line undid it since, and merging it again would bring back what
// was removed. An entry other set is seen where a version of the line has
// it exactly; a removal only where a version holds every entry other set
// (the merge that took it in): a version without the name says nothing
// (the line may have renamed it away and back).
func (a *ancestry) unseen(head, baseRoot [32]byte, base, other *format.Snapshot) (*format.Snapshot, bool) {
	var line []*format.Snapshot
	for root := head; root != baseRoot; {
		snap := a.roots[root]
		if snap == nil {
			break
		}
		line = append(line, snap)
		if snap.Parent == nil {
			break
		}
		root = snap.Parent.Root
	}
	ch := changes(base, other)
	var merges []*format.Snapshot // versions that hold every entry other set
	for _, v := range line {
		all, any := true, false
		for name, e := range ch {
			if e != nil {
				any = true
				all = all && holds(v, name, e)
			}
		}
		if any && all {
			merges = append(merges, v)
		}
	}
	out := &format.Snapshot{Entries: slices.Clone(base.Entries)}
	left := false
	for name, e := range ch {
		in := line
		if e == nil {
			in = merges
		}
		if slices.ContainsFunc(in, func(v *format.Snapshot) bool { return holds(v, name, e) }) {
			continue
		}
		if e == nil {
			out.Remove(name)
		} else {
			out.Set(*e)
		}
		left = true
	}
	return out, left
}

// changes maps each name other changed from base to its entry there (nil:
// removed).
func changes(base, other *format.Snapshot) map[string]*format.DirEntry {
	ch := map[string]*format.DirEntry{}
	for i := range other.Entries {
		e := &other.Entries[i]
		if j, ok := base.Find(e.Name); !ok || !sameEntry(&base.Entries[j], e) {
			ch[e.Name] = e
		}
	}
	for i := range base.Entries {
		if _, ok := other.Find(base.Entries[i].Name); !ok {
			ch[base.Entries[i].Name] = nil
		}
	}
	return ch
}

// holds reports whether snap has entry e at name (e nil: no entry).
func holds(snap *format.Snapshot, name string, e *format.DirEntry) bool {
	i, ok := snap.Find(name)
	if e == nil {
		return !ok
	}
	return ok && sameEntry(&snap.Entries[i], e)
}
