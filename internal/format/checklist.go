package format

import (
	"fmt"

	"github.com/umbra-store/umbra/internal/kind"
	"github.com/umbra-store/umbra/keyring"
)

// CheckListVersion is the first byte of a check list.
const CheckListVersion = 0x01

// A check list entry: a kind byte, then the capability's two 32-byte
// fields.
const (
	checkFile      = 0x01 // a file's verify capability: root digest ‖ verify key V
	checkDir       = 0x02 // a folder's verify capability: public key P ‖ verify key Vd
	checkEntrySize = 1 + 32 + 32
)

// MaxCheckEntries bounds a check list's entries (a folder's own bound,
// MaxEntries, is lower).
const MaxCheckEntries = 1 << 20

// MaxCheckList is the largest check list a decoder takes.
const MaxCheckList = 1 + MaxCheckEntries*checkEntrySize

// CheckList is what a folder's record names for check and repair: the
// verify capabilities of the folder's files of their own and of its
// folders. A folder's verify-capability holder reads it (its read key is
// in the record's verify part) and so reaches the whole tree, learning no
// name and no byte.
type CheckList struct {
	Files []keyring.VerifyCap
	Dirs  []keyring.DirVerifyCap
}

// Encode returns the check list's bytes: version, then the files' entries
// and the folders', in the order held.
func (l *CheckList) Encode() []byte {
	b := make([]byte, 1, 1+(len(l.Files)+len(l.Dirs))*checkEntrySize)
	b[0] = CheckListVersion
	for _, f := range l.Files {
		root := f.Root()
		b = append(append(append(b, checkFile), root[:]...), f.Key().Bytes()...)
	}
	for _, d := range l.Dirs {
		pub := d.PublicKey()
		b = append(append(append(b, checkDir), pub[:]...), d.VerifyKey().Bytes()...)
	}
	return b
}

// ErrCheckList is a check list that does not decode.
var ErrCheckList = kind.New(kind.Corrupt, "format: malformed check list")

// DecodeCheckList decodes a check list, refusing another version, a
// length that is not whole entries, more than MaxCheckEntries, and an
// unknown kind.
func DecodeCheckList(b []byte) (*CheckList, error) {
	if len(b) == 0 || b[0] != CheckListVersion {
		return nil, fmt.Errorf("%w: version", ErrCheckList)
	}
	body := b[1:]
	if len(body)%checkEntrySize != 0 || len(body)/checkEntrySize > MaxCheckEntries {
		return nil, fmt.Errorf("%w: %d bytes", ErrCheckList, len(b))
	}
	l := &CheckList{}
	for ; len(body) > 0; body = body[checkEntrySize:] {
		a := [32]byte(body[1:33])
		key, err := keyring.KeyFromBytes(body[33:65])
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrCheckList, err)
		}
		switch body[0] {
		case checkFile:
			l.Files = append(l.Files, keyring.NewVerifyCap(a, key))
		case checkDir:
			l.Dirs = append(l.Dirs, keyring.NewDirVerifyCap(a, key))
		default:
			return nil, fmt.Errorf("%w: entry kind 0x%02x", ErrCheckList, body[0])
		}
	}
	return l, nil
}
