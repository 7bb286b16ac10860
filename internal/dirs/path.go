package dirs

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"github.com/umbra-store/umbra/internal/format"
	"github.com/umbra-store/umbra/keyring"
)

// aliasName is what an alias may be called: it must not look like a
// capability ("umbra:…") or a relative file name with a colon.
var aliasName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// CheckAlias reports whether name can be an alias.
func CheckAlias(name string) error {
	if !aliasName.MatchString(name) || name == "umbra" {
		return fmt.Errorf("%w: alias %q: 1 to 64 letters, digits, '_', '.', '-', starting with a letter or digit, not \"umbra\"", ErrBadPath, name)
	}
	return nil
}

// IsPath reports whether s names something stored: a capability, or
// ALIAS:path.
func IsPath(s string) bool {
	if strings.HasPrefix(s, "umbra:") {
		return true
	}
	i := strings.IndexByte(s, ':')
	return i > 0 && aliasName.MatchString(s[:i])
}

// target is a parsed path: the capability it starts from and the names
// under it.
type target struct {
	root  keyring.Cap
	names []string
	text  string // for errors: the alias and path, never a capability
}

// parse parses CAP, CAP/a/b, ALIAS: and ALIAS:a/b.
func (s *Service) parse(p string) (target, error) {
	var capText, rest, shown string
	if strings.HasPrefix(p, "umbra:") {
		capText, rest, _ = strings.Cut(p, "/")
		shown = "/" + rest
	} else {
		name, r, ok := strings.Cut(p, ":")
		if !ok {
			return target{}, fmt.Errorf("%w: %q: want ALIAS:path or a capability", ErrBadPath, p)
		}
		if err := CheckAlias(name); err != nil {
			return target{}, err
		}
		if s.aliases == nil {
			return target{}, fmt.Errorf("%w: no alias %q", ErrBadPath, name)
		}
		c, ok, err := s.aliases.Lookup(name)
		if err != nil {
			return target{}, err
		}
		if !ok {
			return target{}, fmt.Errorf("%w: no alias %q (umbra alias list)", ErrBadPath, name)
		}
		capText, rest, shown = c, r, p
	}
	root, err := keyring.ParseCap(capText)
	if err != nil {
		return target{}, err
	}
	t := target{root: root, text: shown}
	for _, n := range strings.Split(rest, "/") {
		switch n {
		case "", ".":
			continue
		case "..":
			return target{}, fmt.Errorf("%w: %q: '..' is not allowed", ErrBadPath, shown)
		}
		if err := format.CheckName(n); err != nil {
			return target{}, fmt.Errorf("%q: %w", shown, err)
		}
		t.names = append(t.names, n)
	}
	return t, nil
}

// node is where a path leads.
type node struct {
	entry *format.DirEntry // nil at a path's root
	// A folder: its read capability, and its write capability if the path
	// came through write capabilities all the way.
	dir    *keyring.DirReadCap
	write  *keyring.DirWriteCap
	file   *keyring.ReadCap // a file of its own
	inline []byte           // a file inside its folder (entry.Kind == EntryInline)
	verify keyring.Cap      // a verify capability: nothing can be walked
	// within are the ids of the folders the path came through.
	within [][32]byte
}

// inside reports whether the path to n goes through folder id, or n is it.
func (n *node) inside(id [32]byte) bool {
	if n.dir != nil && n.dir.ID() == id {
		return true
	}
	for _, w := range n.within {
		if w == id {
			return true
		}
	}
	return false
}

func (n *node) isDir() bool { return n.dir != nil }

// rootNode is the node of a capability.
func rootNode(c keyring.Cap) *node {
	switch c := c.(type) {
	case keyring.DirWriteCap:
		r := c.Read()
		return &node{dir: &r, write: &c}
	case keyring.DirReadCap:
		return &node{dir: &c}
	case keyring.ReadCap:
		return &node{file: &c}
	}
	return &node{verify: c}
}

// child is the node of entry e in folder n.
func child(n *node, e *format.DirEntry) *node {
	c := &node{entry: e, within: append(append([][32]byte(nil), n.within...), n.dir.ID())}
	switch e.Kind {
	case format.EntryDir:
		r := e.Dir
		c.dir = &r
		if n.write != nil && e.HasSeed {
			if w, ok := n.write.OpenChild(e.Dir.PublicKey(), e.Seed); ok {
				c.write = &w
			}
		}
	case format.EntryFile:
		f := e.File
		c.file = &f
	case format.EntryInline:
		c.inline = e.Data
	}
	return c
}

// walk follows t's names from its capability.
func (s *Service) walk(ctx context.Context, t target) (*node, error) {
	n := rootNode(t.root)
	return s.walkFrom(ctx, n, t.names, t.text)
}

func (s *Service) walkFrom(ctx context.Context, n *node, names []string, shown string) (*node, error) {
	for i, name := range names {
		if n.verify != nil {
			return nil, ErrVerifyOnly
		}
		if !n.isDir() {
			return nil, fmt.Errorf("%w: %s", ErrNotDir, prefix(shown, names[:i]))
		}
		v, err := s.resolve(ctx, *n.dir)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", prefix(shown, names[:i]), err)
		}
		j, ok := v.snap.Find(name)
		if !ok {
			return nil, fmt.Errorf("%w: %s", ErrNotFound, prefix(shown, names[:i+1]))
		}
		n = child(n, &v.snap.Entries[j])
	}
	return n, nil
}

// walkParent follows all of t's names but the last, which it returns;
// the parent must be a folder.
func (s *Service) walkParent(ctx context.Context, t target) (*node, string, error) {
	if len(t.names) == 0 {
		return nil, "", fmt.Errorf("%w: %q names no entry in a folder", ErrBadPath, t.text)
	}
	last := len(t.names) - 1
	n, err := s.walkFrom(ctx, rootNode(t.root), t.names[:last], t.text)
	if err != nil {
		return nil, "", err
	}
	if n.verify != nil {
		return nil, "", ErrVerifyOnly
	}
	if !n.isDir() {
		return nil, "", fmt.Errorf("%w: %s", ErrNotDir, prefix(t.text, t.names[:last]))
	}
	return n, t.names[last], nil
}

// prefix shows the path up to names (an alias path; never a capability).
func prefix(shown string, names []string) string {
	base, _, _ := strings.Cut(shown, ":")
	if strings.HasPrefix(shown, "/") || shown == "" {
		base = "(capability)"
	}
	return base + ":" + strings.Join(names, "/")
}
