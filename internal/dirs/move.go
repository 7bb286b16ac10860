package dirs

import (
	"context"
	"fmt"

	"github.com/umbra-store/umbra/internal/format"
	"github.com/umbra-store/umbra/keyring"
)

// removeName is the change that removes name (none if it is gone).
func removeName(name string) func(*format.Snapshot) error {
	return func(snap *format.Snapshot) error {
		if !snap.Remove(name) {
			return errUnchanged
		}
		return nil
	}
}

// Remove removes path's entry from its folder; a folder only with
// recursive (judged on the version the change is made to: a file another
// writer replaced by a folder meanwhile is not removed). Nothing is deleted
// from the store (its blocks are collected once no lease holds them).
func (s *Service) Remove(ctx context.Context, path string, recursive bool) error {
	t, parent, name, err := s.writableParent(ctx, path)
	if err != nil {
		return err
	}
	if _, err := s.walkFrom(ctx, parent, []string{name}, t.text); err != nil {
		return err
	}
	return s.update(ctx, *parent.write, func(snap *format.Snapshot) error {
		if i, ok := snap.Find(name); ok && snap.Entries[i].Kind == format.EntryDir && !recursive {
			return fmt.Errorf("%w: %s (rm -r removes a folder)", ErrIsDir, prefix(t.text, t.names))
		}
		return removeName(name)(snap)
	})
}

// Move moves from's entry to to (into it, if to is a folder). Within one
// folder it is one change, of the entry there when it is made; across two,
// the entry is added to the destination first and removed from the source
// after, so that a failure between leaves it in both places, never in
// none, and a source another writer changed meanwhile is left as it is
// (ErrConflict).
func (s *Service) Move(ctx context.Context, from, to string) error {
	ft, err := s.parse(from)
	if err != nil {
		return err
	}
	src, name, err := s.walkParent(ctx, ft)
	if err != nil {
		return err
	}
	n, err := s.walkFrom(ctx, src, []string{name}, ft.text)
	if err != nil {
		return err
	}
	dst, dname, err := s.destination(ctx, to, name)
	if err != nil {
		return err
	}
	if src.write == nil || dst.write == nil {
		return ErrReadOnly
	}
	if n.isDir() && dst.inside(n.dir.ID()) {
		return fmt.Errorf("%w: a folder cannot move into itself", ErrBadPath)
	}
	e := *n.entry
	e.Name = dname
	if e.Kind == format.EntryDir && e.HasSeed {
		e = reseal(e, *src.write, *dst.write)
	}
	if src.write.ID() == dst.write.ID() {
		if name == dname {
			return nil
		}
		return s.update(ctx, *dst.write, renameIn(name, dname, e))
	}
	if err := s.setEntry(ctx, *dst.write, e, false); err != nil {
		return err
	}
	// The source's entry goes only if it is still the one copied: one
	// another writer put there meanwhile stays (in both places then, as
	// after a failure between the two changes), and the move fails.
	orig := *n.entry
	return s.update(ctx, *src.write, func(snap *format.Snapshot) error {
		i, ok := snap.Find(name)
		if ok && !sameEntry(&snap.Entries[i], &orig) {
			return fmt.Errorf("%w: %s changed during the move: its new version stays there, the old one is at %s", ErrConflict, from, to)
		}
		return removeName(name)(snap)
	})
}

// reseal is folder entry e, whose seed is sealed for folder from, with its
// seed sealed for folder to (without one if from's does not open it).
func reseal(e format.DirEntry, from, to keyring.DirWriteCap) format.DirEntry {
	if w, ok := from.OpenChild(e.Dir.PublicKey(), e.Seed); ok {
		e.Seed = to.SealChild(w)
	} else {
		e.HasSeed = false
	}
	return e
}

// renameIn is the change that renames name to dname in one folder: the
// entry there when the change is made (another writer's put meanwhile
// moves with it). looked is the entry as the move first saw it, renamed:
// finding it at dname with name gone is the move done by an earlier try.
func renameIn(name, dname string, looked format.DirEntry) func(*format.Snapshot) error {
	var moved *format.DirEntry // by this change's last application
	return func(snap *format.Snapshot) error {
		i, ok := snap.Find(name)
		j, taken := snap.Find(dname)
		switch {
		case ok && taken:
			return fmt.Errorf("%w: %q", ErrExists, dname)
		case !ok && taken && (sameEntry(&snap.Entries[j], &looked) || sameEntry(&snap.Entries[j], moved)):
			return errUnchanged // done by an earlier try
		case !ok:
			return fmt.Errorf("%w: %q", ErrNotFound, name)
		}
		e := snap.Entries[i]
		e.Name = dname
		snap.Remove(name)
		snap.Set(e)
		moved = &e
		return nil
	}
}

// destination resolves where a new entry goes: into path if it is a
// folder (named name), else at path.
func (s *Service) destination(ctx context.Context, path, name string) (*node, string, error) {
	t, err := s.parse(path)
	if err != nil {
		return nil, "", err
	}
	n, err := s.walk(ctx, t)
	if err == nil && n.isDir() {
		return n, name, nil
	}
	if err != nil && !isNotFound(err) {
		return nil, "", err
	}
	if err == nil {
		return nil, "", fmt.Errorf("%w: %s", ErrExists, prefix(t.text, t.names))
	}
	return s.walkParent(ctx, t)
}
