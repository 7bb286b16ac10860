package dirs

import (
	"context"
	"fmt"

	"github.com/umbra-store/umbra/internal/format"
	"github.com/umbra-store/umbra/keyring"
)

// Op is one change to a folder's entries, for Apply.
type Op struct {
	// Kind: "set" puts an entry (a file by Ref, an inline file by Data, a
	// folder by Ref: linked writable if a write capability), replacing a
	// file of the same name; "remove" removes Name (a folder with all
	// under it); "rmdir" removes Name if it is a folder that is empty (one
	// another writer has put something into meanwhile stays); "mkdir"
	// makes a new folder named Name (ErrExists if the name is taken).
	Kind  string `json:"kind"`
	Name  string `json:"name"`
	Ref   string `json:"ref,omitempty"`
	Data  []byte `json:"data,omitempty"`
	Size  uint64 `json:"size,omitempty"`
	Mode  uint32 `json:"mode,omitempty"`
	MTime int64  `json:"mtime_ns,omitempty"`
}

// Apply makes ops, in order, one change to the folder at path: one
// publish for many changes (a mount's writes). It returns the write
// capability of each folder an op made, by name.
func (s *Service) Apply(ctx context.Context, path string, ops []Op) (map[string]string, error) {
	t, err := s.parse(path)
	if err != nil {
		return nil, err
	}
	n, err := s.walk(ctx, t)
	if err != nil {
		return nil, err
	}
	if !n.isDir() {
		return nil, fmt.Errorf("%w: %s", ErrNotDir, prefix(t.text, t.names))
	}
	if n.write == nil {
		return nil, ErrReadOnly
	}
	w := *n.write
	made := map[string]string{}
	entries := make([]*format.DirEntry, len(ops))
	for i, op := range ops {
		if err := format.CheckName(op.Name); err != nil {
			return nil, err
		}
		switch op.Kind {
		case "remove", "rmdir":
		case "mkdir":
			child := keyring.GenerateDirWriteCap()
			if err := s.create(ctx, child); err != nil {
				return nil, err
			}
			e := s.dirEntry(w, op.Name, child, op.Mode&0o7777)
			if op.MTime != 0 {
				e.MTime = op.MTime
			}
			entries[i], made[op.Name] = &e, child.Encode()
		case "set":
			e, err := s.opEntry(ctx, w, op)
			if err != nil {
				return nil, err
			}
			entries[i] = &e
		default:
			return nil, fmt.Errorf("%w: op %q", ErrBadPath, op.Kind)
		}
	}
	empty, err := s.emptyFolders(ctx, n, ops, entries)
	if err != nil {
		return nil, err
	}
	err = s.update(ctx, w, applyOps(ops, entries, empty))
	return made, err
}

// applyOps is the change Apply makes: ops in order, with the entries the
// set and mkdir ops put, and the folders (by ID) empty for rmdir ops.
func applyOps(ops []Op, entries []*format.DirEntry, empty map[[32]byte]bool) func(*format.Snapshot) error {
	return func(snap *format.Snapshot) error {
		changed := false
		for i, op := range ops {
			if op.Kind == "remove" {
				changed = snap.Remove(op.Name) || changed
				continue
			}
			if op.Kind == "rmdir" {
				if j, ok := snap.Find(op.Name); ok && snap.Entries[j].Kind == format.EntryDir && empty[snap.Entries[j].Dir.ID()] {
					changed = snap.Remove(op.Name) || changed
				}
				continue
			}
			j, ok := snap.Find(op.Name)
			if ok && sameEntry(&snap.Entries[j], entries[i]) {
				continue
			}
			if ok && op.Kind == "mkdir" {
				// Another writer made the name meanwhile: a new empty
				// folder must not replace what it holds.
				return fmt.Errorf("%w: %q", ErrExists, op.Name)
			}
			snap.Set(*entries[i])
			changed = true
		}
		if !changed {
			return errUnchanged
		}
		return nil
	}
}

// emptyFolders finds, for the rmdir ops of ops, which of the folders
// their names may hold when the op applies are empty now, by folder ID:
// the one the name holds in folder n, and any an earlier op of ops puts
// there (entries: each op's; a mkdir's is new, so empty).
func (s *Service) emptyFolders(ctx context.Context, n *node, ops []Op, entries []*format.DirEntry) (map[[32]byte]bool, error) {
	empty := map[[32]byte]bool{}
	check := func(c keyring.DirReadCap) error {
		v, err := s.resolve(ctx, c)
		if err == nil && len(v.snap.Entries) == 0 {
			empty[c.ID()] = true
		}
		return err
	}
	for k, op := range ops {
		if op.Kind != "rmdir" {
			continue
		}
		ch, err := s.walkFrom(ctx, n, []string{op.Name}, op.Name)
		switch {
		case err == nil && ch.isDir():
			if err := check(*ch.dir); err != nil {
				return nil, err
			}
		case err != nil && !isNotFound(err):
			return nil, err
		}
		for i, e := range entries[:k] {
			if e == nil || e.Name != op.Name || e.Kind != format.EntryDir {
				continue
			}
			if ops[i].Kind == "mkdir" {
				empty[e.Dir.ID()] = true
			} else if err := check(e.Dir); err != nil {
				return nil, err
			}
		}
	}
	return empty, nil
}

// opEntry is the entry a set op puts.
func (s *Service) opEntry(ctx context.Context, w keyring.DirWriteCap, op Op) (format.DirEntry, error) {
	e := format.DirEntry{Name: op.Name, Mode: op.Mode & 0o7777, MTime: op.MTime}
	if e.MTime == 0 {
		e.MTime = s.o.Now().UnixNano()
	}
	if op.Ref == "" {
		if len(op.Data) > format.MaxInline {
			return e, fmt.Errorf("%w: %d bytes inline (at most %d)", ErrBadPath, len(op.Data), format.MaxInline)
		}
		e.Kind, e.Data, e.Size = format.EntryInline, op.Data, uint64(len(op.Data))
		return e, nil
	}
	c, err := keyring.ParseCap(op.Ref)
	if err != nil {
		return e, err
	}
	switch c := c.(type) {
	case keyring.ReadCap:
		e.Kind, e.File, e.Size = format.EntryFile, c, op.Size
	case keyring.DirWriteCap:
		mt := e.MTime
		e = s.dirEntry(w, op.Name, c, e.Mode)
		e.MTime = mt
	case keyring.DirReadCap:
		e.Kind, e.Dir = format.EntryDir, c
	default:
		return e, fmt.Errorf("%w: a verify capability cannot be an entry", ErrBadPath)
	}
	return e, nil
}
