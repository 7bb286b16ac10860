package fuse

import (
	"context"
	"fmt"
	"strings"

	"github.com/umbra-store/umbra/internal/kind"
	"github.com/umbra-store/umbra/internal/printable"
	"github.com/umbra-store/umbra/keyring"
)

// Resolver is what finding a mount's root needs: a path's capability,
// and a file's name and size.
type Resolver interface {
	// Share returns the capability (as "write" or "read") of what path
	// names (dirs.Service.Share).
	Share(ctx context.Context, path, as string) (string, error)
	// FileInfo returns the name stored with a file and its size.
	FileInfo(ctx context.Context, capText string) (name string, size uint64, err error)
}

// ResolveRoot resolves what to mount: a capability as it is, a path to the
// capability of what it names (a folder's write one if the path reaches
// it).
func ResolveRoot(ctx context.Context, r Resolver, ref string) (Root, error) {
	capText := ref
	if !strings.HasPrefix(ref, "umbra:") || strings.Contains(ref, "/") {
		w, err := r.Share(ctx, ref, "write")
		switch {
		case err == nil:
			capText = w
		case kind.Of(err) == kind.ReadOnly || kind.Of(err) == kind.Usage:
			if capText, err = r.Share(ctx, ref, "read"); err != nil {
				return Root{}, err
			}
		default:
			return Root{}, err
		}
	}
	cp, err := keyring.ParseCap(capText)
	if err != nil {
		return Root{}, err
	}
	switch cp.Kind() {
	case keyring.KindDirRead:
		return Root{Ref: capText, IsFolder: true}, nil
	case keyring.KindDirWrite:
		return Root{Ref: capText, IsFolder: true, Writable: true}, nil
	case keyring.KindFileRead:
		name, size, err := r.FileInfo(ctx, capText)
		if err != nil {
			return Root{}, err
		}
		if !printable.PlainName(name) {
			name = "file"
		}
		return Root{Ref: capText, Name: name, Size: size}, nil
	}
	return Root{}, kind.New(kind.Usage, fmt.Sprintf("a %s capability cannot be mounted: it reads nothing", cp.Kind()))
}
