package blockstore

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// Modes of everything the store creates: the node directory's secrets are
// protected by file modes alone, and the index, though ciphertext and
// digests, tells a local reader which blocks this node holds.
const (
	dirMode  = 0o700
	fileMode = 0o600
)

// privateFS is Pebble's file system with the store's modes: Pebble creates
// files 0666 and directories 0755, less the umask. Under a 0700 directory the
// moment between create and chmod exposes nothing.
type privateFS struct{ vfs.FS }

var _ vfs.FS = privateFS{}

func (p privateFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := p.FS.Create(name, c)
	return privateFile(f, name, err)
}

func (p privateFS) OpenReadWrite(name string, c vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	f, err := p.FS.OpenReadWrite(name, c, opts...)
	return privateFile(f, name, err)
}

func (p privateFS) ReuseForWrite(oldname, newname string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := p.FS.ReuseForWrite(oldname, newname, c)
	return privateFile(f, newname, err)
}

func (p privateFS) Lock(name string) (io.Closer, error) {
	l, err := p.FS.Lock(name)
	if err == nil {
		if err = private(name, nil); err != nil {
			l.Close()
			return nil, err
		}
	}
	return l, err
}

// privateFile sets a file just opened to fileMode, closing it if that
// fails.
func privateFile(f vfs.File, name string, err error) (vfs.File, error) {
	if err != nil {
		return f, err
	}
	if err := private(name, nil); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func (p privateFS) MkdirAll(dir string, _ os.FileMode) error {
	return p.FS.MkdirAll(dir, dirMode)
}

func (p privateFS) Unwrap() vfs.FS { return p.FS }

// private sets a file Pebble just created to fileMode.
func private(name string, err error) error {
	if err != nil {
		return err
	}
	if err := os.Chmod(name, fileMode); err != nil {
		return fmt.Errorf("blockstore: %w", err)
	}
	return nil
}

// makePrivate creates dir and index with dirMode and brings what an earlier
// version left there to dirMode and fileMode.
func makePrivate(dir, index string) error {
	for _, d := range []string{dir, index} {
		if err := os.MkdirAll(d, dirMode); err != nil {
			return fmt.Errorf("blockstore: %w", err)
		}
	}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		want := os.FileMode(fileMode)
		if d.IsDir() {
			want = dirMode
		} else if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if info.Mode().Perm() != want {
			return os.Chmod(path, want)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("blockstore: set modes: %w", err)
	}
	return nil
}
