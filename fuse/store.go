package fuse

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"syscall"

	"github.com/umbra-store/umbra/internal/dirs"
	"github.com/umbra-store/umbra/internal/kind"
)

// Store is what the filesystem needs of umbra. A ref is a capability's
// text: a folder's (write or read) or a file's (read).
type Store interface {
	// ListRefs lists a folder with each entry's ref, or an inline file's
	// bytes (dirs.Service.ListRefs).
	ListRefs(ctx context.Context, folder string) ([]dirs.Entry, error)
	// Chunks returns the plaintext size of each of a file's chunks.
	Chunks(ctx context.Context, file string) ([]uint64, error)
	// GetRange writes length bytes of a file from off to w.
	GetRange(ctx context.Context, file string, off, length int64, w io.Writer) error
}

// Lender is a Store that lends the buffers of the chunks it reads (a
// store in the daemon: the engine's, taken whole by the mount's cache) and
// takes them back once the cache is done with them.
type Lender interface {
	ReleaseChunk(buf []byte)
}

// Writer is what a read-write mount needs besides: storing a file's bytes
// (no folder changes), and one change of many ops to a folder.
type Writer interface {
	PutData(ctx context.Context, r io.Reader) (ref string, size uint64, err error)
	// PutFiles stores small files (each at most BatchFile bytes) as files
	// of their own, durable together, and returns their refs in order.
	PutFiles(ctx context.Context, files []*io.SectionReader) ([]string, error)
	Apply(ctx context.Context, folder string, ops []dirs.Op) (made map[string]string, err error)
}

func kindOf(err error) string { return kind.Of(err).String() }

// errno maps an error to the errno the kernel is given: the one place
// where umbra's errors meet POSIX. An error of no mapped kind is logged
// and becomes EIO.
func errno(err error, log *slog.Logger) syscall.Errno {
	if err == nil {
		return 0
	}
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	switch kind.Of(err) {
	case kind.NotFound:
		return syscall.ENOENT
	case kind.Exists:
		return syscall.EEXIST
	case kind.NotDir:
		return syscall.ENOTDIR
	case kind.IsDir:
		return syscall.EISDIR
	case kind.ReadOnly:
		return syscall.EROFS
	case kind.Usage:
		return syscall.EINVAL
	case kind.Full:
		return syscall.ENOSPC
	case kind.Busy, kind.Conflict, kind.FewPeers:
		return syscall.EAGAIN
	case kind.Interrupted:
		return syscall.EINTR
	}
	if errors.Is(err, context.Canceled) {
		return syscall.EINTR
	}
	log.Warn("fuse: I/O error", "kind", kind.Of(err).String())
	return syscall.EIO
}
