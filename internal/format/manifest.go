package format

import (
	"crypto/subtle"
	"encoding/binary"
	"fmt"

	"github.com/umbra-store/umbra/erasure"
	"github.com/umbra-store/umbra/internal/kind"
	"github.com/umbra-store/umbra/internal/seal"
	"github.com/umbra-store/umbra/keyring"
)

// Version is the manifest format version this package writes: its
// level-0 entries name shards by BLAKE3 digests. Version 0x02, the same
// layout with SHA-256 shard digests, is still read (and written for a node
// whose ShardHash says SHA-256). Version 0x01 (no key commitment) is
// retired: a reader refuses it, so that no block can be made to open under
// two keys by leaving the commitment out.
const Version = 0x03

// VersionSHA256 is the manifest version whose shard digests are SHA-256.
const VersionSHA256 = 0x02

// The functions a node's shard digests are made with, as multihash codes
// (Node.ShardHash). Node blocks themselves are always named by SHA-256.
const (
	ShardSHA256 uint64 = 0x12 // version 0x02
	ShardBLAKE3 uint64 = 0x1e // version 0x03
)

// retiredVersion is the first manifest version, without a key commitment.
const retiredVersion = 0x01

// CommitmentSize is the size of a node's key commitment, in bytes.
const CommitmentSize = 32

// headerLen is the node block header: version, key commitment, verifyLen.
const headerLen = 1 + CommitmentSize + 4

// KindFile marks a node of a file's manifest tree.
const KindFile = 0x01

// NoHint marks a shard with no placement hint.
const NoHint = 0xFFFF

// Limits enforced by the decoder (and the encoder).
const (
	MaxNodePlain = 256 << 10 // bytes of verify+read plaintext in one node
	MaxLevel     = 16        // a tree this deep holds far more than 2^64 bytes
	MaxPeers     = 1024
	// MaxNodeBlock bounds a node block the decoder accepts; encoded nodes
	// stay under 320 KiB.
	MaxNodeBlock = 1 << 20 // bytes
	// MaxChunk bounds a chunk's plaintext (the chunker's default maximum is
	// 4 MiB), so a hostile manifest cannot make a reader allocate gigabytes.
	MaxChunk   = 16 << 20 // bytes
	maxNameLen = 4096
)

// Key-derivation and AAD strings; see docs/format.md.
const (
	verifyPartInfo = "umbra manifest verify-part v1"
	readPartInfo   = "umbra manifest read-part v1"
	verifyAAD      = "umbra manifest v1 verify"
	readAAD        = "umbra manifest v1 read"
	commitInfo     = "umbra manifest key-commitment v2"
)

// Errors returned by the decoders, wrapped with detail.
var (
	ErrVersion   = kind.New(kind.Corrupt, "format: unsupported manifest version")
	ErrMalformed = kind.New(kind.Corrupt, "format: malformed manifest")
	ErrAuth      = kind.New(kind.Corrupt, "format: manifest failed authentication (wrong key or corrupted block)")
	// ErrCommitment is returned by Open and OpenVerify when the key does not
	// match the node's key commitment: the block is not the one this key
	// was made for (it wraps ErrAuth).
	ErrCommitment = fmt.Errorf("%w: key does not match the node's key commitment", ErrAuth)
)

// Commitment returns the key commitment a node block opened with verifyKey
// carries: HKDF(verifyKey, "umbra manifest key-commitment v2"). The verify
// key is a one-way function of the read key, so committing to it commits to
// both, and a verify-capability holder can check it too.
func Commitment(verifyKey keyring.Key) [CommitmentSize]byte {
	return [CommitmentSize]byte(verifyKey.Derive(commitInfo).Bytes())
}

// Entry is one child of a node: a data chunk (level 0) or a node one level
// down (level > 0).
type Entry struct {
	// Verify part.
	SealedLen int        // level 0: bytes of the sealed chunk
	Shards    [][32]byte // level 0: digest of each shard (Node.ShardHash), stripe after stripe
	Hints     []uint16   // level 0: per shard, index into Node.Peers or NoHint
	Child     [32]byte   // level > 0: SHA-256 of the child node block
	ChildVKey keyring.Key

	// Read part.
	Key  keyring.Key // level 0: chunk key; level > 0: child node's read key
	Size uint64      // plaintext bytes under this entry
}

// Node is a decoded manifest node. After OpenVerify only the verify-part
// fields are set.
type Node struct {
	Level   uint8
	K, M    int
	Suite   byte
	Peers   [][]byte // placement hint table: peer IDs (binary)
	Entries []Entry
	// ShardHash is the function of the shard digests (ShardBLAKE3 or
	// ShardSHA256), given by the block's version; zero encodes as
	// ShardBLAKE3.
	ShardHash uint64

	// Read part.
	Size uint64 // plaintext bytes under this node
	Name string // root only, optional
}

// shardCount is the number of shards of a sealed chunk under k+m, as
// erasure.Layout defines it.
func shardCount(sealedLen, k, m int) int {
	c, err := erasure.New(k, m)
	if err != nil {
		return -1
	}
	return c.ShardCount(sealedLen)
}

// EntryVerifySize is the verify-part size of a level-0 entry with n shards.
func EntryVerifySize(n int) int { return 4 + n*34 }

// EntrySize is the total plaintext an entry adds to a node at level.
func EntrySize(level uint8, shards int) int {
	if level == 0 {
		return EntryVerifySize(shards) + 32 + 8
	}
	return 64 + 32 + 8
}

// HeaderSize bounds the plaintext of a node with no entries.
func HeaderSize(n *Node) int {
	// verify part: kind, level, k, m, suite, count, peer count;
	// read part: kind, size, count, name length.
	s := (1 + 1 + 2 + 2 + 1 + 4 + 2) + (1 + 8 + 4 + 2) + len(n.Name)
	for _, p := range n.Peers {
		s += 1 + len(p)
	}
	return s
}

func (n *Node) check() error {
	if n.K < 1 || n.M < 0 || n.K+n.M > 256 {
		return fmt.Errorf("%w: shards %d+%d", ErrMalformed, n.K, n.M)
	}
	if n.Level > MaxLevel {
		return fmt.Errorf("%w: level %d", ErrMalformed, n.Level)
	}
	if len(n.Peers) > MaxPeers {
		return fmt.Errorf("%w: %d peers", ErrMalformed, len(n.Peers))
	}
	if n.Level > 0 && len(n.Peers) > 0 {
		// Only leaves list shards, so only they have hints to resolve.
		return fmt.Errorf("%w: a peer table in a level-%d node", ErrMalformed, n.Level)
	}
	if len(n.Name) > maxNameLen {
		return fmt.Errorf("%w: name of %d bytes", ErrMalformed, len(n.Name))
	}
	return nil
}

func (n *Node) verifyPlain() ([]byte, error) {
	if err := n.check(); err != nil {
		return nil, err
	}
	b := make([]byte, 0, 1024)
	b = append(b, KindFile, n.Level)
	b = binary.BigEndian.AppendUint16(b, uint16(n.K))
	b = binary.BigEndian.AppendUint16(b, uint16(n.M))
	b = append(b, n.Suite)
	b = binary.BigEndian.AppendUint32(b, uint32(len(n.Entries)))
	b = binary.BigEndian.AppendUint16(b, uint16(len(n.Peers)))
	for _, p := range n.Peers {
		if len(p) == 0 || len(p) > 255 {
			return nil, fmt.Errorf("%w: peer ID of %d bytes", ErrMalformed, len(p))
		}
		b = append(b, byte(len(p)))
		b = append(b, p...)
	}
	for i, e := range n.Entries {
		if n.Level == 0 {
			want := shardCount(e.SealedLen, n.K, n.M)
			if len(e.Shards) != want || len(e.Hints) != want {
				return nil, fmt.Errorf("%w: entry %d has %d shards, %d hints, want %d", ErrMalformed, i, len(e.Shards), len(e.Hints), want)
			}
			b = binary.BigEndian.AppendUint32(b, uint32(e.SealedLen))
			for j, s := range e.Shards {
				b = append(b, s[:]...)
				h := e.Hints[j]
				if h != NoHint && int(h) >= len(n.Peers) {
					return nil, fmt.Errorf("%w: hint %d of %d peers", ErrMalformed, h, len(n.Peers))
				}
				b = binary.BigEndian.AppendUint16(b, h)
			}
		} else {
			b = append(b, e.Child[:]...)
			b = append(b, e.ChildVKey.Bytes()...)
		}
	}
	return b, nil
}

func (n *Node) readPlain() []byte {
	b := make([]byte, 0, 64+len(n.Entries)*40+len(n.Name))
	b = append(b, KindFile)
	b = binary.BigEndian.AppendUint64(b, n.Size)
	b = binary.BigEndian.AppendUint32(b, uint32(len(n.Entries)))
	b = binary.BigEndian.AppendUint16(b, uint16(len(n.Name)))
	b = append(b, n.Name...)
	for _, e := range n.Entries {
		b = append(b, e.Key.Bytes()...)
		b = binary.BigEndian.AppendUint64(b, e.Size)
	}
	return b
}

// Plaintext returns the node's two plaintext parts, for deriving a
// convergent node key.
func (n *Node) Plaintext() (verify, read []byte, err error) {
	v, err := n.verifyPlain()
	if err != nil {
		return nil, nil, err
	}
	return v, n.readPlain(), nil
}

// Encode seals the node under readKey and returns the block bytes.
func (n *Node) Encode(readKey keyring.Key) ([]byte, error) {
	var version byte
	switch n.ShardHash {
	case 0, ShardBLAKE3:
		version = Version
	case ShardSHA256:
		version = VersionSHA256
	default:
		return nil, fmt.Errorf("%w: shard hash 0x%x", ErrMalformed, n.ShardHash)
	}
	vp, rp, err := n.Plaintext()
	if err != nil {
		return nil, err
	}
	if len(vp)+len(rp) > MaxNodePlain+maxNameLen+1024 {
		return nil, fmt.Errorf("%w: node of %d bytes", ErrMalformed, len(vp)+len(rp))
	}
	vkey := readKey.Derive(keyring.VerifyKeyInfo)
	vs := sealPart(vkey.Derive(verifyPartInfo), vp, verifyAAD)
	rs := sealPart(readKey.Derive(readPartInfo), rp, readAAD)
	out := make([]byte, 0, headerLen+len(vs)+len(rs))
	out = append(out, version)
	commit := Commitment(vkey)
	out = append(out, commit[:]...)
	out = binary.BigEndian.AppendUint32(out, uint32(len(vs)))
	out = append(out, vs...)
	return append(out, rs...), nil
}

func sealPart(key keyring.Key, plain []byte, aad string) []byte {
	// seal.Seal binds only its suite byte; the part's AAD is bound by
	// sealing (aad ‖ plain) and checking the prefix on open.
	msg := make([]byte, 0, len(aad)+len(plain))
	msg = append(append(msg, aad...), plain...)
	return seal.Seal(nil, key, msg)
}

func openPart(key keyring.Key, sealed []byte, aad string) ([]byte, error) {
	msg, err := seal.Open(nil, key, sealed)
	if err != nil {
		return nil, ErrAuth
	}
	if len(msg) < len(aad) || string(msg[:len(aad)]) != aad {
		return nil, fmt.Errorf("%w: part label", ErrMalformed)
	}
	return msg[len(aad):], nil
}

// split checks a node block's header and its key commitment against
// verifyKey, and returns its two sealed parts and the function its shard
// digests are made with. Nothing is decrypted before the commitment
// matches.
func split(block []byte, verifyKey keyring.Key) (vs, rs []byte, shardHash uint64, err error) {
	if len(block) < 1 {
		return nil, nil, 0, fmt.Errorf("%w: empty block", ErrMalformed)
	}
	if len(block) > MaxNodeBlock {
		return nil, nil, 0, fmt.Errorf("%w: node block of %d bytes", ErrMalformed, len(block))
	}
	switch block[0] {
	case Version:
		shardHash = ShardBLAKE3
	case VersionSHA256:
		shardHash = ShardSHA256
	case retiredVersion:
		return nil, nil, 0, fmt.Errorf("%w %d: retired (it carries no key commitment); this umbra reads %d and %d", ErrVersion, block[0], VersionSHA256, Version)
	default:
		return nil, nil, 0, fmt.Errorf("%w %d (this umbra reads %d and %d)", ErrVersion, block[0], VersionSHA256, Version)
	}
	if len(block) < headerLen {
		return nil, nil, 0, fmt.Errorf("%w: truncated header", ErrMalformed)
	}
	want := Commitment(verifyKey)
	if subtle.ConstantTimeCompare(block[1:1+CommitmentSize], want[:]) != 1 {
		return nil, nil, 0, ErrCommitment
	}
	vl := binary.BigEndian.Uint32(block[1+CommitmentSize : headerLen])
	if uint64(vl) > uint64(len(block)-headerLen) {
		return nil, nil, 0, fmt.Errorf("%w: verify part of %d bytes in a %d-byte block", ErrMalformed, vl, len(block))
	}
	return block[headerLen : headerLen+vl], block[headerLen+vl:], shardHash, nil
}

// OpenVerify decodes the verify part of a node block with the file's (or the
// node's) verify key. The caller must have checked the block against the
// digest its parent or capability names: byte 0 (which function names the
// shards) is bound by that digest, not by the key.
func OpenVerify(block []byte, verifyKey keyring.Key) (*Node, error) {
	vs, _, shardHash, err := split(block, verifyKey)
	if err != nil {
		return nil, err
	}
	vp, err := openPart(verifyKey.Derive(verifyPartInfo), vs, verifyAAD)
	if err != nil {
		return nil, err
	}
	n, err := decodeVerify(vp)
	if err != nil {
		return nil, err
	}
	n.ShardHash = shardHash
	return n, nil
}

// Open decodes both parts of a node block with its read key (the block
// checked against its digest first, as for OpenVerify).
func Open(block []byte, readKey keyring.Key) (*Node, error) {
	vkey := readKey.Derive(keyring.VerifyKeyInfo)
	n, err := OpenVerify(block, vkey)
	if err != nil {
		return nil, err
	}
	_, rs, _, _ := split(block, vkey)
	rp, err := openPart(readKey.Derive(readPartInfo), rs, readAAD)
	if err != nil {
		return nil, err
	}
	if err := decodeRead(n, rp); err != nil {
		return nil, err
	}
	return n, nil
}
