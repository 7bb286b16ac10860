// Package config reads and writes a node's config.json.
package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/umbra-store/umbra/erasure"
)

// File is the config file's name inside the node directory.
const File = "config.json"

// Version is the config version this umbra writes.
const Version = 1

// Config is a node's configuration.
type Config struct {
	Version int
	Put     Put
}

// Put holds defaults for storing files.
type Put struct {
	// Shards is the default erasure coding, "K+M". Default "3+2".
	Shards string
}

// Default returns the configuration umbra init writes.
func Default() Config {
	return Config{Version: Version, Put: Put{Shards: "3+2"}}
}

// Validate checks every field.
func (c Config) Validate() error {
	if c.Version != Version {
		return fmt.Errorf("config: version %d, this umbra reads %d", c.Version, Version)
	}
	if _, _, err := ParseShards(c.Put.Shards); err != nil {
		return fmt.Errorf("config: Put.Shards: %w", err)
	}
	return nil
}

// ParseShards parses "K+M".
func ParseShards(s string) (k, m int, err error) {
	ks, ms, ok := strings.Cut(s, "+")
	if !ok {
		return 0, 0, fmt.Errorf("%w: %q is not K+M (e.g. 3+2)", erasure.ErrParams, s)
	}
	k, err1 := strconv.Atoi(ks)
	m, err2 := strconv.Atoi(ms)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("%w: %q is not K+M (e.g. 3+2)", erasure.ErrParams, s)
	}
	if _, err := erasure.New(k, m); err != nil {
		return 0, 0, err
	}
	return k, m, nil
}

// Load reads dir/config.json; a missing file yields the defaults.
func Load(dir string) (Config, error) {
	raw, err := os.ReadFile(filepath.Join(dir, File))
	if errors.Is(err, os.ErrNotExist) {
		return Default(), nil
	}
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	c := Default()
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Config{}, fmt.Errorf("config: %s: %w", filepath.Join(dir, File), err)
	}
	return c, c.Validate()
}

// Write writes dir/config.json with mode 0600.
func Write(dir string, c Config) error {
	raw, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, File), append(raw, '\n'), 0o600)
}
