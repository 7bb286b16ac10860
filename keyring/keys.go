package keyring

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
)

// File names inside a node directory.
const (
	IdentityFile = "identity.key" // Ed25519 private key, PKCS#8 PEM, 0600
	SecretFile   = "secret.key"   // 32-byte user secret, PEM, 0600
)

const (
	secretMode = 0o600
	pemSecret  = "UMBRA USER SECRET"
)

// Errors returned by CreateKeys and ReadKeys.
var (
	ErrExists      = errors.New("keyring: node directory already initialised (use --force to overwrite its keys)")
	ErrNotInit     = errors.New("keyring: node directory not initialised (run 'umbra init')")
	ErrPermissions = errors.New("keyring: open to other users")
)

// Secrets are the user's secrets, all derived from one 32-byte master secret
// stored in SecretFile.
type Secrets struct {
	master Key
}

// NewSecrets wraps a master secret.
func NewSecrets(master Key) Secrets { return Secrets{master: master} }

// Format implements fmt.Formatter: secrets never print.
func (Secrets) Format(f fmt.State, _ rune) { fmt.Fprint(f, "[redacted secrets]") }

// LogValue implements slog.LogValuer.
func (Secrets) LogValue() slog.Value { return slog.StringValue("[redacted secrets]") }

// ChunkerKey keys the content-defined chunker so that cut points do not
// fingerprint content.
func (s Secrets) ChunkerKey() Key { return s.master.Derive("umbra chunker v1") }

// ConvergenceKey keys convergent encryption: chunk key =
// HMAC(ConvergenceKey, "umbra chunk v2" ‖ BLAKE3(chunk)). Without it nobody can confirm that this user
// stores a known file.
func (s Secrets) ConvergenceKey() Key { return s.master.Derive("umbra convergence v1") }

// Identity is the node's Ed25519 key pair.
type Identity struct {
	priv ed25519.PrivateKey
}

// Private returns the private key. Do not log it.
func (i Identity) Private() ed25519.PrivateKey { return i.priv }

// Public returns the public key.
func (i Identity) Public() ed25519.PublicKey { return i.priv.Public().(ed25519.PublicKey) }

func (Identity) Format(f fmt.State, _ rune) { fmt.Fprint(f, "[redacted identity]") }

// Keys are a node's identity and its user's secrets, as kept in key files
// in the node directory (internal/node owns the directory itself).
type Keys struct {
	Identity Identity
	Secrets  Secrets
}

// CreateKeys writes a fresh identity and user secret (mode 0600) into the
// existing directory dir. A directory that already holds keys is refused
// with ErrExists unless force is set.
func CreateKeys(dir string, force bool) (*Keys, error) {
	path := dir
	if !force {
		for _, f := range []string{IdentityFile, SecretFile} {
			if _, err := os.Stat(filepath.Join(path, f)); err == nil {
				return nil, fmt.Errorf("%w: %s", ErrExists, path)
			}
		}
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("keyring: generate identity: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("keyring: encode identity: %w", err)
	}
	master := GenerateKey()
	if err := writeSecretFile(filepath.Join(path, IdentityFile), &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		return nil, err
	}
	if err := writeSecretFile(filepath.Join(path, SecretFile), &pem.Block{Type: pemSecret, Bytes: master.Bytes()}); err != nil {
		return nil, err
	}
	return &Keys{Identity: Identity{priv: priv}, Secrets: Secrets{master: master}}, nil
}

// ReadKeys reads the identity and secrets from the key files in dir: each
// must exist (ErrNotInit) and be open to its owner only (ErrPermissions).
func ReadKeys(dir string) (*Keys, error) {
	path := dir
	idBlock, err := readSecretFile(filepath.Join(path, IdentityFile), "PRIVATE KEY")
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKCS8PrivateKey(idBlock)
	if err != nil {
		return nil, fmt.Errorf("keyring: %s: %w", IdentityFile, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("keyring: %s: not an Ed25519 key", IdentityFile)
	}
	sec, err := readSecretFile(filepath.Join(path, SecretFile), pemSecret)
	if err != nil {
		return nil, err
	}
	master, err := KeyFromBytes(sec)
	if err != nil {
		return nil, fmt.Errorf("keyring: %s: %w", SecretFile, err)
	}
	return &Keys{Identity: Identity{priv: priv}, Secrets: Secrets{master: master}}, nil
}

// writeSecretFile writes atomically (temp file, fsync, rename) with mode 0600.
func writeSecretFile(path string, b *pem.Block) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-key-*")
	if err != nil {
		return fmt.Errorf("keyring: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(secretMode); err != nil {
		tmp.Close()
		return fmt.Errorf("keyring: %w", err)
	}
	if err := pem.Encode(tmp, b); err != nil {
		tmp.Close()
		return fmt.Errorf("keyring: write %s: %w", filepath.Base(path), err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("keyring: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("keyring: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("keyring: %w", err)
	}
	return nil
}

func readSecretFile(path, typ string) ([]byte, error) {
	st, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s missing", ErrNotInit, path)
	}
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: key file %s has mode %o (run: chmod 600 %s)", ErrPermissions, path, st.Mode().Perm(), path)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	b, _ := pem.Decode(raw)
	if b == nil || b.Type != typ {
		return nil, fmt.Errorf("keyring: %s: not a %s PEM block", filepath.Base(path), typ)
	}
	return b.Bytes, nil
}
