package fuse

import (
	"sort"
	"testing"

	"github.com/hanwen/go-fuse/v2/posixtest"
)

// unsupported are the posixtest cases a mount does not pass, on purpose
// (docs/architecture.md, "FUSE", lists why).
var unsupported = map[string]bool{
	// No hard links: a folder entry is a name for a capability; two names
	// for one file would not stay one file once either is written.
	"Link": true, "LinkUnlinkRename": true,
	// No symbolic links: the snapshot format has no such entry.
	"SymlinkReadlink": true, "SetattrSymlink": true, "OpenSymlinkRace": true,
	// No locks: a mount is one process over a store shared with others.
	"FcntlFlockLocksFile": true,
}

// TestPosix runs go-fuse's POSIX conformance tests against read-write
// mounts, each on a folder of its own.
func TestPosix(t *testing.T) {
	needFUSE(t)
	l := newLocal(t)
	var names []string
	for name := range posixtest.All {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			if unsupported[name] {
				t.Skipf("not supported: %s", name)
			}
			_, dir, _ := mountNew(t, l)
			posixtest.All[name](t, dir)
		})
	}
}
