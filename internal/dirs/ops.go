package dirs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/umbra-store/umbra/internal/engine"
	"github.com/umbra-store/umbra/internal/format"
	"github.com/umbra-store/umbra/keyring"
)

// Entry is one name in a listing.
type Entry struct {
	Name   string `json:"name"`
	Kind   string `json:"kind"` // "file" or "folder"
	Size   uint64 `json:"size"`
	Mode   uint32 `json:"mode"`
	MTime  int64  `json:"mtime_ns"`
	Inline bool   `json:"inline,omitempty"`
	// Writable: a folder whose write capability this path reaches.
	Writable bool `json:"writable,omitempty"`
	// With ListRefs only: the entry's capability (a folder's write one if
	// reached, else its read one; a file's read one), or an inline file's
	// bytes.
	Ref  string `json:"ref,omitempty"`
	Data []byte `json:"data,omitempty"`
}

// entryRef is an entry's capability text, or its inline bytes.
func entryRef(n *node, e *format.DirEntry) (string, []byte) {
	c := child(n, e)
	switch {
	case c.write != nil:
		return c.write.Encode(), nil
	case c.dir != nil:
		return c.dir.Encode(), nil
	case c.file != nil:
		return c.file.Encode(), nil
	}
	return "", append([]byte{}, c.inline...)
}

func listing(n *node, e *format.DirEntry) Entry {
	out := Entry{Name: e.Name, Kind: "file", Size: e.Size, Mode: e.Mode, MTime: e.MTime, Inline: e.Kind == format.EntryInline}
	if e.Kind == format.EntryDir {
		out.Kind = "folder"
		c := child(n, e)
		out.Writable = c.write != nil
	}
	return out
}

// Mkdir makes a folder. With an empty path it makes a new folder of its
// own and returns its write capability; with a path, a folder there (and
// its missing parents with parents).
func (s *Service) Mkdir(ctx context.Context, path string, parents bool) (string, error) {
	if path == "" {
		w := keyring.GenerateDirWriteCap()
		if err := s.create(ctx, w); err != nil {
			return "", err
		}
		return w.Encode(), nil
	}
	t, err := s.parse(path)
	if err != nil {
		return "", err
	}
	if len(t.names) == 0 {
		return "", fmt.Errorf("%w: %s: a folder's root exists", ErrExists, t.text)
	}
	cur := rootNode(t.root)
	for i, name := range t.names {
		last := i == len(t.names)-1
		next, err := s.walkFrom(ctx, cur, []string{name}, t.text)
		switch {
		case err == nil && last && parents && next.isDir():
			return "", nil // as mkdir -p: a folder there already is no error
		case err == nil && last:
			return "", fmt.Errorf("%w: %s", ErrExists, prefix(t.text, t.names))
		case err == nil && !next.isDir():
			return "", fmt.Errorf("%w: %s", ErrNotDir, prefix(t.text, t.names[:i+1]))
		case err == nil:
			cur = next
			continue
		case !isNotFound(err) || (!last && !parents):
			return "", err
		}
		if cur.write == nil {
			return "", fmt.Errorf("%w: %s", ErrReadOnly, prefix(t.text, t.names[:i]))
		}
		made, err := s.mkdirIn(ctx, cur, name, last && !parents, t.text)
		if err != nil {
			return "", fmt.Errorf("%s: %w", prefix(t.text, t.names[:i+1]), err)
		}
		cur = made
	}
	return "", nil
}

// mkdirIn makes folder name in the folder cur (writable) and returns it.
// A folder another writer made there meanwhile is returned instead, unless
// exclusive (ErrExists); the one made here is then left unreferenced (its
// records expire with their leases).
func (s *Service) mkdirIn(ctx context.Context, cur *node, name string, exclusive bool, path string) (*node, error) {
	w := keyring.GenerateDirWriteCap()
	if err := s.create(ctx, w); err != nil {
		return nil, err
	}
	err := s.setEntry(ctx, *cur.write, s.dirEntry(*cur.write, name, w, 0o755), false)
	if errors.Is(err, ErrExists) && !exclusive {
		if next, werr := s.walkFrom(ctx, cur, []string{name}, path); werr == nil && next.isDir() {
			return next, nil
		}
	}
	if err != nil {
		return nil, err
	}
	r := w.Read()
	return &node{dir: &r, write: &w}, nil
}

func (s *Service) dirEntry(parent keyring.DirWriteCap, name string, w keyring.DirWriteCap, mode uint32) format.DirEntry {
	return format.DirEntry{Name: name, Kind: format.EntryDir, Mode: mode, MTime: s.o.Now().UnixNano(),
		Dir: w.Read(), Seed: parent.SealChild(w), HasSeed: true}
}

// setEntry sets e in folder w; unless replace, a name taken by another
// entry is ErrExists (the same entry, from an earlier try, is not).
// An inline e that would take the folder's inline files past inlineBudget
// is errInlineBudget.
func (s *Service) setEntry(ctx context.Context, w keyring.DirWriteCap, e format.DirEntry, replace bool) error {
	return s.update(ctx, w, func(snap *format.Snapshot) error {
		if i, ok := snap.Find(e.Name); ok {
			if sameEntry(&snap.Entries[i], &e) {
				return errUnchanged
			}
			if !replace || snap.Entries[i].Kind == format.EntryDir {
				return fmt.Errorf("%w: %q", ErrExists, e.Name)
			}
		}
		snap.Set(e)
		if e.Kind == format.EntryInline && inlineBytes(snap) > inlineBudget {
			return errInlineBudget
		}
		return nil
	})
}

// errInlineBudget: a change would take a folder's inline files past
// inlineBudget; its small files are then stored as files of their own.
var errInlineBudget = errors.New("dirs: the folder's inline budget is spent")

// inlineBytes is what a folder's inline files hold.
func inlineBytes(snap *format.Snapshot) int64 {
	var n int64
	for i := range snap.Entries {
		if snap.Entries[i].Kind == format.EntryInline {
			n += int64(len(snap.Entries[i].Data))
		}
	}
	return n
}

// spill stores the inline entries of es as files of their own.
func (s *Service) spill(ctx context.Context, es []format.DirEntry, o engine.PutOptions) error {
	for i := range es {
		if es[i].Kind != format.EntryInline {
			continue
		}
		e, err := s.storeFile(ctx, bytes.NewReader(es[i].Data), es[i].Name, FileMeta{Mode: es[i].Mode, MTime: es[i].MTime}, o, false)
		if err != nil {
			return err
		}
		es[i] = e
	}
	return nil
}

func isNotFound(err error) bool { return err != nil && errors.Is(err, ErrNotFound) }

// ListRefs lists a folder with each entry's capability or inline bytes:
// what a caller that holds the folder's capability can derive anyway,
// handed over so that it can address the entries directly (a mount).
func (s *Service) ListRefs(ctx context.Context, path string) ([]Entry, error) {
	return s.list(ctx, path, true)
}

// List lists a folder, or shows a file as a one-entry listing.
func (s *Service) List(ctx context.Context, path string) ([]Entry, error) {
	return s.list(ctx, path, false)
}

func (s *Service) list(ctx context.Context, path string, refs bool) ([]Entry, error) {
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
		return nil, ErrVerifyOnly
	case !n.isDir() && n.entry != nil:
		return []Entry{listing(n, n.entry)}, nil
	case !n.isDir():
		return nil, fmt.Errorf("%w: a file capability: use umbra stat", ErrNotDir)
	}
	v, err := s.resolve(ctx, *n.dir)
	if err != nil {
		return nil, err
	}
	out := make([]Entry, len(v.snap.Entries))
	for i := range v.snap.Entries {
		e := &v.snap.Entries[i]
		out[i] = listing(n, e)
		if refs {
			out[i].Ref, out[i].Data = entryRef(n, e)
		}
	}
	return out, nil
}

// File is a file found by path: its capability, or its bytes if inline.
type File struct {
	Cap    *keyring.ReadCap
	Inline []byte
	Size   uint64
	Mode   uint32
	MTime  int64
	Name   string
}

// OpenFile finds the file at path (a file capability is a path too).
func (s *Service) OpenFile(ctx context.Context, path string) (File, error) {
	t, err := s.parse(path)
	if err != nil {
		return File{}, err
	}
	n, err := s.walk(ctx, t)
	if err != nil {
		return File{}, err
	}
	if n.isDir() {
		return File{}, fmt.Errorf("%w: %s (get -r fetches a folder)", ErrIsDir, prefix(t.text, t.names))
	}
	if n.verify != nil {
		return File{}, ErrVerifyOnly
	}
	f := File{Cap: n.file, Inline: n.inline}
	if n.entry != nil {
		f.Size, f.Mode, f.MTime, f.Name = n.entry.Size, n.entry.Mode, n.entry.MTime, n.entry.Name
	}
	return f, nil
}

// writableParent parses path and walks to the folder its last name is
// in, which must be writable.
func (s *Service) writableParent(ctx context.Context, path string) (target, *node, string, error) {
	t, err := s.parse(path)
	if err != nil {
		return t, nil, "", err
	}
	parent, name, err := s.walkParent(ctx, t)
	if err != nil {
		return t, nil, "", err
	}
	if parent.write == nil {
		return t, nil, "", fmt.Errorf("%w: %s", ErrReadOnly, prefix(t.text, t.names[:len(t.names)-1]))
	}
	return t, parent, name, nil
}

// Link puts an existing file or folder (its capability) at path. A
// folder's write capability links it writable.
func (s *Service) Link(ctx context.Context, capText, path string) error {
	c, err := keyring.ParseCap(capText)
	if err != nil {
		return err
	}
	_, parent, name, err := s.writableParent(ctx, path)
	if err != nil {
		return err
	}
	e := format.DirEntry{Name: name, MTime: s.o.Now().UnixNano()}
	switch c := c.(type) {
	case keyring.ReadCap:
		info, err := s.eng.Stat(ctx, c)
		if err != nil {
			return err
		}
		e.Kind, e.File, e.Size, e.Mode = format.EntryFile, c, info.Size, 0o644
	case keyring.DirWriteCap:
		e = s.dirEntry(*parent.write, name, c, 0o755)
	case keyring.DirReadCap:
		if _, err := s.resolve(ctx, c); err != nil {
			return err
		}
		e.Kind, e.Dir, e.Mode = format.EntryDir, c, 0o755
	default:
		return fmt.Errorf("%w: a verify capability cannot be linked", ErrBadPath)
	}
	return s.setEntry(ctx, *parent.write, e, false)
}

// Share returns a capability for path: "read" (default), "verify" or
// "write" (a folder's, when the path reaches it).
func (s *Service) Share(ctx context.Context, path, as string) (string, error) {
	t, err := s.parse(path)
	if err != nil {
		return "", err
	}
	n, err := s.walk(ctx, t)
	if err != nil {
		return "", err
	}
	switch {
	case n.verify != nil && as == "verify":
		return n.verify.Encode(), nil
	case n.verify != nil:
		return "", ErrVerifyOnly
	case n.inline != nil || (n.entry != nil && n.entry.Kind == format.EntryInline):
		return "", fmt.Errorf("%w: %s is stored inside its folder (at most %d bytes); share the folder, or put it again as a file with umbra put", ErrBadPath, prefix(t.text, t.names), format.MaxInline)
	case n.file != nil && as == "write":
		return "", fmt.Errorf("%w: files cannot change: share a folder to share writing", ErrBadPath)
	case n.file != nil && as == "verify":
		return n.file.Verify().Encode(), nil
	case n.file != nil:
		return n.file.Encode(), nil
	case as == "write" && n.write == nil:
		return "", ErrReadOnly
	case as == "write":
		return n.write.Encode(), nil
	case as == "verify":
		return n.dir.Verify().Encode(), nil
	}
	return n.dir.Encode(), nil
}

// FileMeta is a put file's mode and mtime (zero: 0644, now).
type FileMeta struct {
	Mode  uint32
	MTime int64
}

// PutFile stores r at path; into it, named name, if path is a folder. A
// file there is replaced.
func (s *Service) PutFile(ctx context.Context, r io.Reader, path, name string, meta FileMeta, o engine.PutOptions) (Entry, error) {
	dst, dname, err := s.destinationReplacing(ctx, path, name)
	if err != nil {
		return Entry{}, err
	}
	if dst.write == nil {
		return Entry{}, ErrReadOnly
	}
	e, err := s.storeFile(ctx, r, dname, meta, o, true)
	if err != nil {
		return Entry{}, err
	}
	err = s.setEntry(ctx, *dst.write, e, true)
	if errors.Is(err, errInlineBudget) {
		es := []format.DirEntry{e}
		if err = s.spill(ctx, es, o); err == nil {
			e = es[0]
			err = s.setEntry(ctx, *dst.write, e, true)
		}
	}
	if err != nil {
		return Entry{}, err
	}
	return listing(dst, &e), nil
}

// destinationReplacing is destination, where an existing file is
// replaced.
func (s *Service) destinationReplacing(ctx context.Context, path, name string) (*node, string, error) {
	t, err := s.parse(path)
	if err != nil {
		return nil, "", err
	}
	n, err := s.walk(ctx, t)
	switch {
	case err == nil && n.isDir():
		if err := format.CheckName(name); err != nil {
			return nil, "", err
		}
		return n, name, nil
	case err != nil && !isNotFound(err):
		return nil, "", err
	}
	return s.walkParent(ctx, t)
}

// storeFile stores r as the entry name: inline when it is small (and
// inline is allowed), a file of its own otherwise.
func (s *Service) storeFile(ctx context.Context, r io.Reader, name string, meta FileMeta, o engine.PutOptions, inline bool) (format.DirEntry, error) {
	if meta.Mode == 0 {
		meta.Mode = 0o644
	}
	if meta.MTime == 0 {
		meta.MTime = s.o.Now().UnixNano()
	}
	e := format.DirEntry{Name: name, Mode: meta.Mode & 0o7777, MTime: meta.MTime}
	head := make([]byte, format.MaxInline+1)
	n, err := io.ReadFull(r, head)
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		if inline {
			e.Kind, e.Data, e.Size = format.EntryInline, head[:n], uint64(n)
			return e, nil
		}
	case err != nil:
		return e, err
	}
	if o.K == 0 && o.M == 0 {
		o.K, o.M = s.o.K, s.o.M
	}
	res, err := s.eng.Put(ctx, io.MultiReader(bytes.NewReader(head[:n]), r), o)
	if err != nil {
		return e, err
	}
	e.Kind, e.File, e.Size = format.EntryFile, res.Cap, res.Size
	return e, nil
}
