package dirs

import (
	"context"
	"strings"
	"testing"

	"github.com/umbra-store/umbra/keyring"
)

// TestVerifyCapWalksTheTree: a folder's verify capability reaches, through
// the check lists, every snapshot and every file of its own that its read
// capability reaches, and reads nothing: no name, no byte.
func TestVerifyCapWalksTheTree(t *testing.T) {
	o := newOffline(t)
	ctx := context.Background()
	o.newFolder(t, "root")
	if _, err := o.svc.Mkdir(ctx, "root:a/b/c", true); err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("x", 10<<10) // a file of its own, not inline
	o.put(t, []byte(big+"1"), "root:one")
	o.put(t, []byte(big+"2"), "root:a/two")
	o.put(t, []byte(big+"3"), "root:a/b/c/three")
	o.put(t, []byte("tiny"), "root:a/b/inline")
	if _, err := o.svc.Mkdir(ctx, "root:empty", false); err != nil {
		t.Fatal(err)
	}
	byRead, err := o.svc.Roots(ctx, "root:")
	if err != nil {
		t.Fatal(err)
	}
	vc, err := o.svc.Share(ctx, "root:", "verify")
	if err != nil || !strings.HasPrefix(vc, "umbra:dv:") {
		t.Fatalf("share --verify: %q %v", vc, err)
	}
	byVerify, err := o.svc.Roots(ctx, vc)
	if err != nil {
		t.Fatal(err)
	}
	have := map[[32]byte]bool{}
	for _, v := range byVerify {
		have[v.Root()] = true
	}
	// Five folders (root, a, b, c, empty) with a snapshot each, four with a
	// check list (empty has none), three files of their own.
	if len(byRead) != 12 {
		t.Fatalf("the read walk found %d roots, want 12", len(byRead))
	}
	for _, v := range byRead {
		if !have[v.Root()] {
			t.Fatalf("the verify walk misses %x of the read walk's %d", v.Root(), len(byRead))
		}
	}
	if len(byVerify) != len(byRead) {
		t.Fatalf("the verify walk found %d roots, the read walk %d", len(byVerify), len(byRead))
	}
	// A verify capability opens no snapshot: the names stay hidden.
	if _, err := o.svc.List(ctx, vc); err == nil {
		t.Fatal("a folder's verify capability listed its folder")
	}
	dv, err := keyring.ParseCap(vc)
	if err != nil || dv.Kind() != keyring.KindDirVerify {
		t.Fatalf("parse: %v", err)
	}
}
