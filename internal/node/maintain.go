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
	"time"
)

// MaintainFile lists the files a node keeps alive: its daemon checks,
// repairs and renews each periodically (mode 0600). Entries are verify
// capabilities: the list reads no file.
const MaintainFile = "maintain.json"

const maintainVersion = 1

// Root is one file the node maintains.
type Root struct {
	Cap    string `json:"cap"`    // a file verify capability (umbra:fv:…)
	Origin string `json:"origin"` // "put" (this node's user stored it) or "added"
	Added  int64  `json:"added"`  // unix seconds
}

type maintainFile struct {
	Version int    `json:"version"`
	Roots   []Root `json:"roots"`
}

// Maintained is the maintain file of a node directory, read afresh on
// each use (the CLI changes it while the daemon runs).
type Maintained struct {
	path string
	mu   sync.Mutex
}

// OpenMaintained returns the maintain list of the node directory dir.
func OpenMaintained(dir string) *Maintained {
	return &Maintained{path: filepath.Join(dir, MaintainFile)}
}

func (m *Maintained) load() ([]Root, error) {
	b, err := os.ReadFile(m.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("node: maintain list: %w", err)
	}
	var f maintainFile
	if err := json.Unmarshal(b, &f); err != nil || f.Version != maintainVersion {
		return nil, fmt.Errorf("node: %s: not a maintain list of version %d", m.path, maintainVersion)
	}
	return f.Roots, nil
}

func (m *Maintained) save(rs []Root) error {
	sort.Slice(rs, func(i, j int) bool { return rs[i].Cap < rs[j].Cap })
	b, err := json.MarshalIndent(maintainFile{Version: maintainVersion, Roots: rs}, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(m.path, append(b, '\n'))
}

// List returns the roots.
func (m *Maintained) List() ([]Root, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.load()
}

// Add adds the verify capability vc (a no-op if listed).
func (m *Maintained) Add(vc, origin string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	rs, err := m.load()
	if err != nil {
		return err
	}
	for _, r := range rs {
		if r.Cap == vc {
			return nil
		}
	}
	return m.save(append(rs, Root{Cap: vc, Origin: origin, Added: time.Now().Unix()}))
}

// Remove removes vc; false if it was not listed.
func (m *Maintained) Remove(vc string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	rs, err := m.load()
	if err != nil {
		return false, err
	}
	for i, r := range rs {
		if r.Cap == vc {
			return true, m.save(append(rs[:i], rs[i+1:]...))
		}
	}
	return false, nil
}
