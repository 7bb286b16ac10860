// Package node owns a node directory ($UMBRA_PATH, ~/.umbra): it creates it
// (mode 0700), refuses one that others can enter, and opens what is in it —
// the key files (keyring), config.json (config) and the block store
// (blockstore, with the config's quota). docs/format.md ("Node directory")
// lists its files.
package node

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/umbra-store/umbra/blockstore"
	"github.com/umbra-store/umbra/internal/config"
	"github.com/umbra-store/umbra/internal/kind"
	"github.com/umbra-store/umbra/keyring"
)

// Names inside a node directory.
const (
	BlocksDir = "blocks" // the block store
)

// dirMode is the node directory's mode: its secrets are protected by file
// modes alone.
const dirMode = 0o700

// Errors.
var (
	// ErrLocked is returned by Open when another process has the store open.
	ErrLocked = kind.New(kind.Busy, "node: the node directory is in use by another umbra process")
	// ErrPermissions is returned by Open for a directory that group or
	// others can enter.
	ErrPermissions = errors.New("node: node directory open to other users")
)

// Node is an opened node directory.
type Node struct {
	Path   string
	Keys   *keyring.Keys
	Config config.Config
	Store  *blockstore.Store
}

// DefaultPath returns $UMBRA_PATH, or ~/.umbra.
func DefaultPath() string {
	if p := os.Getenv("UMBRA_PATH"); p != "" {
		return p
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ".umbra"
	}
	return filepath.Join(home, ".umbra")
}

// Init creates the node directory at path (mode 0700) with fresh keys and
// the default config. A directory that already holds keys is refused
// (keyring.ErrExists) unless force.
func Init(path string, force bool) (*keyring.Keys, error) {
	if err := os.MkdirAll(path, dirMode); err != nil {
		return nil, fmt.Errorf("node: create node directory: %w", err)
	}
	if err := os.Chmod(path, dirMode); err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	keys, err := keyring.CreateKeys(path, force)
	if err != nil {
		return nil, err
	}
	if err := config.Write(path, config.Default()); err != nil {
		return nil, err
	}
	return keys, nil
}

// Open opens the node directory at path: its keys, its config and its
// block store (with the config's Storage.MaxBytes as quota; Pebble's
// errors go to log).
func Open(path string, log *slog.Logger) (*Node, error) {
	st, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s does not exist", keyring.ErrNotInit, path)
	}
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("node: %s is not a directory", path)
	}
	keys, err := keyring.ReadKeys(path)
	if err != nil {
		return nil, err
	}
	// As ssh does with its keys: a node directory that group or others can
	// enter exposes its secrets, its store and its API socket.
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %o (run: chmod 700 %s)", ErrPermissions, path, st.Mode().Perm(), path)
	}
	cfg, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	store, err := blockstore.Open(filepath.Join(path, BlocksDir),
		blockstore.WithQuota(cfg.Storage.MaxBytes), blockstore.WithLogger(log))
	if err != nil {
		if isLockErr(err) {
			return nil, fmt.Errorf("%w (%s)", ErrLocked, path)
		}
		return nil, err
	}
	return &Node{Path: path, Keys: keys, Config: cfg, Store: store}, nil
}

// Close closes the store.
func (n *Node) Close() error { return n.Store.Close() }
