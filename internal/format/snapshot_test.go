package format

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/umbra-store/umbra/keyring"
)

// fixedSnapshot is the known-answer snapshot of docs/format.md ("Folder
// snapshot"): an inline file, a file and a writable child folder.
func fixedSnapshot() *Snapshot {
	parent := fixedFolder()
	childSeed, _ := keyring.KeyFromBytes(bytes.Repeat([]byte{0x55}, 32))
	child := keyring.NewDirWriteCap(childSeed)
	p := fixedPointer().Snapshot
	return &Snapshot{Entries: []DirEntry{
		{Name: "a.txt", Kind: EntryInline, Mode: 0o644, MTime: 1_700_000_000_000_000_000, Size: 2, Data: []byte("hi")},
		{Name: "b.bin", Kind: EntryFile, Mode: 0o600, MTime: 1_700_000_000_000_000_001, Size: 1 << 20, File: p},
		{Name: "d", Kind: EntryDir, Mode: 0o755, MTime: 1_700_000_000_000_000_002, Dir: child.Read(), Seed: parent.SealChild(child), HasSeed: true},
	}}
}

func TestSnapshotKnownAnswer(t *testing.T) {
	b, err := fixedSnapshot().Encode()
	if err != nil {
		t.Fatal(err)
	}
	want, err := readHex("testdata/snapshot-v1.hex")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, want) {
		t.Fatalf("snapshot encoding changed:\n%x", b)
	}
	s, err := DecodeSnapshot(b)
	if err != nil {
		t.Fatal(err)
	}
	child, ok := fixedFolder().OpenChild(s.Entries[2].Dir.PublicKey(), s.Entries[2].Seed)
	if !ok || !child.Read().Equal(s.Entries[2].Dir) {
		t.Fatal("child seed does not open")
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	s := fixedSnapshot()
	p := fixedFolder().SealParent(fixedPointer().Snapshot)
	s.Parent = &Parent{Root: fixedPointer().Snapshot.Root(), SealedKey: p}
	s.Set(DirEntry{Name: "ro", Kind: EntryDir, Dir: keyring.GenerateDirWriteCap().Read()})
	s.Set(DirEntry{Name: "é 漢字 ☃", Kind: EntryInline})
	s.Set(DirEntry{Name: "a.txt", Kind: EntryInline, Size: 3, Data: []byte("new")})
	b, err := s.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeSnapshot(b)
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := got.Encode()
	if !bytes.Equal(b, b2) || len(got.Entries) != 5 || got.Parent == nil || got.Parent.SealedKey != p ||
		!fixedFolder().OpenParent(got.Parent.Root, got.Parent.SealedKey).Equal(fixedPointer().Snapshot) {
		t.Fatalf("round trip: %d entries", len(got.Entries))
	}
	if i, ok := got.Find("a.txt"); !ok || string(got.Entries[i].Data) != "new" {
		t.Fatal("Set did not replace")
	}
	if !got.Remove("ro") || got.Remove("ro") || len(got.Entries) != 4 {
		t.Fatal("Remove")
	}
}

func TestCheckName(t *testing.T) {
	for _, bad := range []string{"", ".", "..", "a/b", "/", "a\x00b", strings.Repeat("x", 256), "\xff\xfe"} {
		if err := CheckName(bad); !errors.Is(err, ErrName) {
			t.Errorf("CheckName(%q) = %v", bad, err)
		}
	}
	for _, good := range []string{"a", "...", ".hidden", "a b", "ü", strings.Repeat("x", 255), "-"} {
		if err := CheckName(good); err != nil {
			t.Errorf("CheckName(%q) = %v", good, err)
		}
	}
}

func TestSnapshotDecodeStrict(t *testing.T) {
	good, _ := fixedSnapshot().Encode()
	mut := func(f func([]byte) []byte) []byte { return f(bytes.Clone(good)) }
	cases := map[string][]byte{
		"version":       mut(func(b []byte) []byte { b[0] = 2; return b }),
		"flags":         mut(func(b []byte) []byte { b[1] = 2; return b }),
		"trailing":      append(bytes.Clone(good), 0),
		"truncated":     good[:len(good)-1],
		"count too big": mut(func(b []byte) []byte { b[5] = 0xff; return b }),
		"empty":         nil,
		// Entry 0's name "a.txt" becomes "b.txt": not below "b.bin".
		"order": mut(func(b []byte) []byte { b[7] = 'b'; return b }),
		"slash": mut(func(b []byte) []byte { b[8] = '/'; return b }),
		"kind":  mut(func(b []byte) []byte { b[12] = 9; return b }),
		"mode":  mut(func(b []byte) []byte { b[13] = 0x10; return b }),
	}
	for name, b := range cases {
		if _, err := DecodeSnapshot(b); !errors.Is(err, ErrSnapshot) {
			t.Errorf("%s: %v", name, err)
		}
	}
	dup := &Snapshot{Entries: []DirEntry{{Name: "x", Kind: EntryInline}, {Name: "x", Kind: EntryInline}}}
	if _, err := dup.Encode(); !errors.Is(err, ErrSnapshot) {
		t.Errorf("duplicate names encoded: %v", err)
	}
	many := &Snapshot{Entries: make([]DirEntry, MaxEntries+1)}
	for i := range many.Entries {
		many.Entries[i] = DirEntry{Name: fmt.Sprintf("%07d", i), Kind: EntryInline}
	}
	if _, err := many.Encode(); !errors.Is(err, ErrSnapshot) {
		t.Errorf("over MaxEntries encoded: %v", err)
	}
	big := &Snapshot{Entries: []DirEntry{{Name: "x", Kind: EntryInline, Size: MaxInline + 1, Data: make([]byte, MaxInline+1)}}}
	if _, err := big.Encode(); !errors.Is(err, ErrSnapshot) {
		t.Errorf("inline over the limit encoded: %v", err)
	}
}

func FuzzSnapshotDecode(f *testing.F) {
	good, _ := fixedSnapshot().Encode()
	f.Add(good)
	f.Add([]byte{1, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := DecodeSnapshot(b)
		if err != nil {
			return
		}
		again, err := s.Encode()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("not canonical: %v", err)
		}
	})
}
