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
	"time"

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
	Network Network
	Storage Storage
	Folders Folders
	Leases  Leases
	// Maintenance: the daemon's periodic check, repair and renewal.
	Maintenance Maintenance
}

// Network configures the libp2p host. Nothing dials out unless Bootstrap
// names peers: no public bootstrap, no mDNS, no NAT mapping, no relay.
type Network struct {
	// Listen are multiaddrs to listen on. Default: TCP and QUIC on
	// 127.0.0.1, ports chosen by the OS.
	Listen []string
	// Bootstrap are peers to connect to at start (multiaddrs ending in
	// /p2p/PEERID).
	Bootstrap []string
	// AllowPeers, when not empty, is the only set of peer IDs this node
	// connects to or accepts (a connection gater; TCP and QUIC).
	AllowPeers []string
	// SwarmKey, when set, is the hex of a 32-byte pre-shared key: only peers
	// with the same key can connect (libp2p pnet). TCP only: QUIC listen
	// addresses are refused with it.
	SwarmKey string
}

// Storage configures what this node stores for others.
type Storage struct {
	// MaxBytes caps the bytes of blocks held; 0 means no cap.
	MaxBytes int64
	// Accept is "anyone" (default) or "allowlist" (only AcceptPeers).
	Accept      string
	AcceptPeers []string
}

// Folders configures folder records. Durations are Go durations ("36h").
type Folders struct {
	// Validity is how long a folder's record stays valid after a change
	// (each change renews it). Holders keep a record, owner or not, until
	// then. Default "8760h" (a year).
	Validity string `json:",omitempty"`
	// DHTRecordAge is how long DHT peers keep a folder record after it was
	// put. Default: kad-dht's, "36h". Holders republish kept records every
	// third of it (at most every 12 h).
	DHTRecordAge string `json:",omitempty"`
}

// Durations returns the folder durations, defaults filled in (age 0:
// kad-dht's).
func (f Folders) Durations() (validity, age, republish time.Duration, err error) {
	validity, age = 365*24*time.Hour, 0
	if f.Validity != "" {
		if validity, err = time.ParseDuration(f.Validity); err != nil || validity < time.Minute || validity > 17520*time.Hour {
			return 0, 0, 0, fmt.Errorf("config: Folders.Validity %q: a duration from 1m to 17520h (two years)", f.Validity)
		}
	}
	if f.DHTRecordAge != "" {
		if age, err = time.ParseDuration(f.DHTRecordAge); err != nil || age < time.Second {
			return 0, 0, 0, fmt.Errorf("config: Folders.DHTRecordAge %q: a duration of at least 1s", f.DHTRecordAge)
		}
	}
	republish = 12 * time.Hour
	if age > 0 {
		republish = min(republish, age/3)
	}
	return validity, age, republish, nil
}

// Put holds defaults for storing files.
type Put struct {
	// Shards is the default erasure coding, "K+M". Default "3+2".
	Shards string
}

// Default returns the configuration umbra init writes.
func Default() Config {
	return Config{
		Version: Version,
		Put:     Put{Shards: "3+2"},
		Network: Network{Listen: []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}},
		Storage: Storage{Accept: "anyone"},
	}
}

// Validate checks every field.
func (c Config) Validate() error {
	if c.Version != Version {
		return fmt.Errorf("config: version %d, this umbra reads %d", c.Version, Version)
	}
	if _, _, err := ParseShards(c.Put.Shards); err != nil {
		return fmt.Errorf("config: Put.Shards: %w", err)
	}
	switch c.Storage.Accept {
	case "", "anyone", "allowlist":
	default:
		return fmt.Errorf("config: Storage.Accept is %q, want \"anyone\" or \"allowlist\"", c.Storage.Accept)
	}
	if _, _, _, err := c.Folders.Durations(); err != nil {
		return err
	}
	if _, _, _, err := c.Leases.Durations(); err != nil {
		return err
	}
	if _, err := c.Maintenance.Every(); err != nil {
		return err
	}
	if c.Storage.MaxBytes < 0 {
		return fmt.Errorf("config: Storage.MaxBytes is negative")
	}
	if c.Network.SwarmKey != "" {
		if len(c.Network.SwarmKey) != 64 {
			return fmt.Errorf("config: Network.SwarmKey must be 64 hex characters (32 bytes)")
		}
		for _, a := range c.Network.Listen {
			if strings.Contains(a, "/quic") || strings.Contains(a, "/webtransport") {
				return fmt.Errorf("config: Network.SwarmKey works over TCP only; remove the QUIC listen address %s", a)
			}
		}
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
