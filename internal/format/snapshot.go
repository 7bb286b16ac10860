package format

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"strings"
	"unicode/utf8"

	"github.com/umbra-store/umbra/internal/kind"
	"github.com/umbra-store/umbra/keyring"
)

// SnapshotVersion is the version byte of a folder snapshot's plaintext.
const SnapshotVersion = 0x01

// Snapshot limits.
const (
	// MaxInline is the largest file stored inside its folder's snapshot
	// rather than as a file of its own: a separate file costs a manifest
	// and k+m shards of at least a padded chunk each (docs/format.md,
	// "Folder snapshot").
	MaxInline = 4096
	// MaxNameLen is the longest entry name, in bytes.
	MaxNameLen = 255
	// MaxSnapshot bounds a snapshot's plaintext; a reader refuses a larger
	// one before fetching it.
	MaxSnapshot = 64 << 20
	// MaxEntries bounds a folder's entries: a decoded entry takes some
	// 250 bytes of memory, so a 64 MiB snapshot of tiny entries would
	// otherwise take 15 times its size.
	MaxEntries = 100_000
	// maxMode keeps permission, setuid, setgid and sticky bits.
	maxMode = 0o7777
)

// EntryKind is what a folder entry names.
type EntryKind uint8

// Entry kinds.
const (
	EntryFile   EntryKind = 0x01 // a file of its own: its read capability
	EntryInline EntryKind = 0x02 // a small file inside the snapshot
	EntryDir    EntryKind = 0x03 // a folder: its read capability, and its seed sealed
)

// ErrSnapshot: a snapshot's plaintext is malformed.
var ErrSnapshot = kind.New(kind.Corrupt, "format: malformed folder snapshot")

// ErrName: a name cannot be an entry's.
var ErrName = kind.New(kind.Usage, "format: invalid name")

// DirEntry is one name in a folder.
type DirEntry struct {
	Name  string
	Kind  EntryKind
	Mode  uint32 // permission bits, at most 0o7777
	MTime int64  // nanoseconds since the Unix epoch
	Size  uint64 // a file's bytes; 0 for a folder
	File  keyring.ReadCap
	Data  []byte // EntryInline
	Dir   keyring.DirReadCap
	// Seed is the child folder's seed sealed for write-capability holders
	// (keyring.DirWriteCap.SealChild); HasSeed is false for a folder linked
	// read-only.
	Seed    [32]byte
	HasSeed bool
}

// Parent names a snapshot's parent: its root digest and its read key,
// sealed.
type Parent struct {
	Root      [32]byte
	SealedKey [32]byte
}

// Snapshot is a folder's content at one version.
type Snapshot struct {
	// Parent is the snapshot this one was made from, if any: a writer that
	// finds two versions merges them against it. Its read key is sealed
	// for the folder's writers (keyring.DirWriteCap.SealParent): a reader
	// never walks back to versions before the one it was given.
	Parent  *Parent
	Entries []DirEntry // sorted by name (bytes), names unique
}

// CheckName reports whether s can name an entry: 1 to 255 bytes of UTF-8,
// no '/', no NUL, not "." or "..".
func CheckName(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("%w: empty name", ErrName)
	case len(s) > MaxNameLen:
		return fmt.Errorf("%w: a name of %d bytes (at most %d)", ErrName, len(s), MaxNameLen)
	case s == "." || s == "..":
		return fmt.Errorf("%w: %q", ErrName, s)
	case strings.ContainsAny(s, "/\x00"):
		return fmt.Errorf("%w: a name cannot hold '/' or NUL", ErrName)
	case !utf8.ValidString(s):
		return fmt.Errorf("%w: a name must be UTF-8", ErrName)
	}
	return nil
}

// Find returns the index of name in the sorted entries, and whether it is
// there.
func (s *Snapshot) Find(name string) (int, bool) {
	lo, hi := 0, len(s.Entries)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if s.Entries[m].Name < name {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, lo < len(s.Entries) && s.Entries[lo].Name == name
}

// Set adds e, or replaces the entry of the same name.
func (s *Snapshot) Set(e DirEntry) {
	i, ok := s.Find(e.Name)
	if ok {
		s.Entries[i] = e
		return
	}
	s.Entries = append(s.Entries, DirEntry{})
	copy(s.Entries[i+1:], s.Entries[i:])
	s.Entries[i] = e
}

// Remove removes name, reporting whether it was there.
func (s *Snapshot) Remove(name string) bool {
	i, ok := s.Find(name)
	if ok {
		s.Entries = append(s.Entries[:i], s.Entries[i+1:]...)
	}
	return ok
}

// Encode returns the snapshot's plaintext (docs/format.md, "Folder
// snapshot"). The entries must be sorted, unique and valid.
func (s *Snapshot) Encode() ([]byte, error) {
	n := 2 + 64 + 4
	for i := range s.Entries {
		n += entryLen(&s.Entries[i])
	}
	b := make([]byte, 2, min(n, MaxSnapshot+1))
	b[0] = SnapshotVersion
	if s.Parent != nil {
		b[1] = 1
		b = append(b, s.Parent.Root[:]...)
		b = append(b, s.Parent.SealedKey[:]...)
	}
	if len(s.Entries) > MaxEntries {
		return nil, fmt.Errorf("%w: %d entries (at most %d in one folder)", ErrSnapshot, len(s.Entries), MaxEntries)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(s.Entries)))
	for i := range s.Entries {
		e := &s.Entries[i]
		if err := e.check(); err != nil {
			return nil, err
		}
		if i > 0 && s.Entries[i-1].Name >= e.Name {
			return nil, fmt.Errorf("%w: entries not sorted or not unique at %d", ErrSnapshot, i)
		}
		b = appendEntry(b, e)
		if len(b) > MaxSnapshot {
			return nil, fmt.Errorf("%w: over %d bytes", ErrSnapshot, MaxSnapshot)
		}
	}
	return b, nil
}

func (e *DirEntry) check() error {
	if err := CheckName(e.Name); err != nil {
		return err
	}
	switch {
	case e.Mode > maxMode:
		return fmt.Errorf("%w: mode %o", ErrSnapshot, e.Mode)
	case e.Kind == EntryInline && (len(e.Data) > MaxInline || uint64(len(e.Data)) != e.Size):
		return fmt.Errorf("%w: inline data of %d bytes, size %d", ErrSnapshot, len(e.Data), e.Size)
	case e.Kind == EntryFile && e.Size > math.MaxInt64:
		return fmt.Errorf("%w: size %d", ErrSnapshot, e.Size)
	case e.Kind == EntryDir && e.Size != 0:
		return fmt.Errorf("%w: a folder of size %d", ErrSnapshot, e.Size)
	case e.Kind < EntryFile || e.Kind > EntryDir:
		return fmt.Errorf("%w: entry kind 0x%02x", ErrSnapshot, byte(e.Kind))
	}
	return nil
}

// entryLen is the encoded length of e.
func entryLen(e *DirEntry) int {
	n := 1 + len(e.Name) + 1 + 2 + 8
	switch e.Kind {
	case EntryFile:
		n += 8 + 64
	case EntryInline:
		n += 2 + len(e.Data)
	case EntryDir:
		n += 64 + 1 + 32
	}
	return n
}

func appendEntry(b []byte, e *DirEntry) []byte {
	b = append(b, byte(len(e.Name)))
	b = append(b, e.Name...)
	b = append(b, byte(e.Kind))
	b = binary.BigEndian.AppendUint16(b, uint16(e.Mode))
	b = binary.BigEndian.AppendUint64(b, uint64(e.MTime))
	switch e.Kind {
	case EntryFile:
		b = binary.BigEndian.AppendUint64(b, e.Size)
		root := e.File.Root()
		b = append(b, root[:]...)
		b = append(b, e.File.ReadKey().Bytes()...)
	case EntryInline:
		b = binary.BigEndian.AppendUint16(b, uint16(len(e.Data)))
		b = append(b, e.Data...)
	case EntryDir:
		pub := e.Dir.PublicKey()
		b = append(b, pub[:]...)
		b = append(b, e.Dir.ReadKey().Bytes()...)
		if e.HasSeed {
			b = append(b, 1)
			b = append(b, e.Seed[:]...)
		} else {
			b = append(b, 0)
		}
	}
	return b
}

// minEntryLen is the smallest encoded entry (a one-byte name, inline, empty).
const minEntryLen = 1 + 1 + 1 + 2 + 8 + 2

// DecodeSnapshot parses a snapshot's plaintext strictly: known version and
// kinds, valid names in strictly ascending order, sizes within bounds, no
// trailing bytes. Inline data is copied out of b.
func DecodeSnapshot(b []byte) (*Snapshot, error) {
	if len(b) > MaxSnapshot {
		return nil, fmt.Errorf("%w: %d bytes", ErrSnapshot, len(b))
	}
	r := &reader{b: b}
	if v := r.u8(); r.err == nil && v != SnapshotVersion {
		return nil, fmt.Errorf("%w: version 0x%02x", ErrSnapshot, v)
	}
	s := &Snapshot{}
	switch flags := r.u8(); {
	case flags == 1:
		root, key := r.take(32), r.take(32)
		if r.err == nil {
			s.Parent = &Parent{Root: [32]byte(root), SealedKey: [32]byte(key)}
		}
	case flags != 0:
		return nil, fmt.Errorf("%w: flags 0x%02x", ErrSnapshot, flags)
	}
	count := r.u32()
	if r.err != nil {
		return nil, fmt.Errorf("%w: truncated header", ErrSnapshot)
	}
	if count > MaxEntries || uint64(count)*minEntryLen > uint64(len(r.b)) {
		return nil, fmt.Errorf("%w: %d entries in %d bytes", ErrSnapshot, count, len(r.b))
	}
	s.Entries = make([]DirEntry, count)
	for i := range s.Entries {
		if err := decodeEntry(r, &s.Entries[i]); err != nil {
			return nil, fmt.Errorf("entry %d: %w", i, err)
		}
		if i > 0 && s.Entries[i-1].Name >= s.Entries[i].Name {
			return nil, fmt.Errorf("%w: entries not in ascending order at %d", ErrSnapshot, i)
		}
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrSnapshot, len(r.b))
	}
	return s, nil
}

func decodeEntry(r *reader, e *DirEntry) error {
	nl := int(r.u8())
	name := r.take(nl)
	e.Kind = EntryKind(r.u8())
	e.Mode = uint32(r.u16())
	e.MTime = int64(r.u64())
	switch e.Kind {
	case EntryFile:
		e.Size = r.u64()
		root, key := r.take(32), r.take(32)
		if r.err == nil {
			k, _ := keyring.KeyFromBytes(key)
			e.File = keyring.NewReadCap([32]byte(root), k)
		}
	case EntryInline:
		n := int(r.u16())
		e.Data = bytes.Clone(r.take(n))
		e.Size = uint64(n)
	case EntryDir:
		pub, key := r.take(32), r.take(32)
		has := r.u8()
		if r.err == nil {
			k, _ := keyring.KeyFromBytes(key)
			e.Dir = keyring.NewDirReadCap([32]byte(pub), k)
		}
		switch has {
		case 0:
		case 1:
			e.HasSeed = true
			copy(e.Seed[:], r.take(32))
		default:
			return fmt.Errorf("%w: seed flag 0x%02x", ErrSnapshot, has)
		}
	}
	if r.err != nil {
		return fmt.Errorf("%w: truncated", ErrSnapshot)
	}
	e.Name = string(name)
	if err := e.check(); err != nil {
		return fmt.Errorf("%w: %w", ErrSnapshot, err)
	}
	return nil
}
