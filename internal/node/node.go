// Package node opens a node directory: its keys (keyring), its config and its
// block store, and the engine over them.
package node

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/umbra-store/umbra/blockstore"
	"github.com/umbra-store/umbra/internal/config"
	"github.com/umbra-store/umbra/internal/engine"
	"github.com/umbra-store/umbra/keyring"
)

// BlocksDir is the block store's directory inside the node directory.
const BlocksDir = "blocks"

// ErrLocked is returned by Open when another process has the store open.
var ErrLocked = errors.New("node: the node directory is in use by another umbra process")

// Node is an opened node directory.
type Node struct {
	Keys   *keyring.Dir
	Config config.Config
	Store  *blockstore.Store
	Engine *engine.Engine
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

// Init creates a node directory with keys and the default config.
func Init(path string, force bool) (*keyring.Dir, error) {
	d, err := keyring.Init(path, force)
	if err != nil {
		return nil, err
	}
	if err := config.Write(path, config.Default()); err != nil {
		return nil, err
	}
	return d, nil
}

// Open opens the node directory at path.
func Open(path string, log *slog.Logger) (*Node, error) {
	keys, err := keyring.Open(path)
	if err != nil {
		return nil, err
	}
	cfg, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(path, BlocksDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	st, err := blockstore.Open(dir)
	if err != nil {
		if isLockErr(err) {
			return nil, fmt.Errorf("%w (%s)", ErrLocked, path)
		}
		return nil, err
	}
	return &Node{
		Keys:   keys,
		Config: cfg,
		Store:  st,
		Engine: engine.New(st, keys.Secrets, engine.WithLogger(log)),
	}, nil
}

// Close closes the store.
func (n *Node) Close() error { return n.Store.Close() }
