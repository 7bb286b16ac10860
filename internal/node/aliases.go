package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"github.com/umbra-store/umbra/internal/kind"
)

// AliasesFile holds a node's aliases: names for capabilities, so that they
// stay off command lines and out of shell history (mode 0600).
const AliasesFile = "aliases.json"

const aliasesVersion = 1

// ErrNoAlias: no alias of that name.
var ErrNoAlias = kind.New(kind.NotFound, "node: no such alias")

type aliasFile struct {
	Version int               `json:"version"`
	Aliases map[string]string `json:"aliases"`
}

// Aliases is the alias file of a node directory. It is read afresh on each
// lookup (the CLI changes it while the daemon runs).
type Aliases struct {
	path string
	mu   sync.Mutex
}

// OpenAliases returns the aliases of the node directory dir.
func OpenAliases(dir string) *Aliases { return &Aliases{path: filepath.Join(dir, AliasesFile)} }

func (a *Aliases) load() (map[string]string, error) {
	b, err := os.ReadFile(a.path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("node: aliases: %w", err)
	}
	var f aliasFile
	if err := json.Unmarshal(b, &f); err != nil || f.Version != aliasesVersion {
		return nil, fmt.Errorf("node: %s: not an alias file of version %d", a.path, aliasesVersion)
	}
	if f.Aliases == nil {
		f.Aliases = map[string]string{}
	}
	return f.Aliases, nil
}

// save writes the file atomically, mode 0600.
func (a *Aliases) save(m map[string]string) error {
	b, err := json.MarshalIndent(aliasFile{Version: aliasesVersion, Aliases: m}, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(a.path, append(b, '\n'))
}

// writeAtomic replaces path with data (mode 0600, synced, renamed into
// place).
func writeAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// Lookup returns the capability an alias stands for.
func (a *Aliases) Lookup(name string) (string, bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	m, err := a.load()
	if err != nil {
		return "", false, err
	}
	c, ok := m[name]
	return c, ok, nil
}

// Set makes name stand for capText, replacing an alias of that name only
// if replace.
func (a *Aliases) Set(name, capText string, replace bool) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	m, err := a.load()
	if err != nil {
		return err
	}
	if _, ok := m[name]; ok && !replace {
		return kind.Mark(fmt.Errorf("node: alias %q exists (alias rm it first)", name), kind.Exists)
	}
	m[name] = capText
	return a.save(m)
}

// Remove removes an alias.
func (a *Aliases) Remove(name string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	m, err := a.load()
	if err != nil {
		return err
	}
	if _, ok := m[name]; !ok {
		return fmt.Errorf("%w: %q", ErrNoAlias, name)
	}
	delete(m, name)
	return a.save(m)
}

// Alias is one alias.
type Alias struct {
	Name string
	Cap  string
}

// List returns the aliases by name.
func (a *Aliases) List() ([]Alias, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	m, err := a.load()
	if err != nil {
		return nil, err
	}
	out := make([]Alias, 0, len(m))
	for n, c := range m {
		out = append(out, Alias{n, c})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
