package format

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/umbra-store/umbra/internal/kind"
	"github.com/umbra-store/umbra/keyring"
)

// RecordVersion is the version byte of a folder record.
const RecordVersion = 0x01

// A folder record, RecordSize bytes (docs/format.md, "Folder record"):
//
//	off   0  version 0x01
//	      1  P, the folder's Ed25519 public key (32)
//	     33  seq, u64 big endian
//	     41  expiry, u64 big endian, Unix seconds
//	     49  salt (16), random per record
//	     65  verify part: AES-256-GCM, key HMAC(Vd, "umbra dir record verify-part v1" ‖ salt),
//	         zero nonce, AAD bytes 0..65: snapshot root ‖ snapshot verify key ‖ check root ‖ check key (128 + 16)
//	    209  read part: AES-256-GCM, key HMAC(Rd, "umbra dir record read-part v1" ‖ salt),
//	         zero nonce, AAD bytes 0..65: snapshot read key (32 + 16)
//	    257  Ed25519 signature by P over "umbra dir record v1" ‖ bytes 0..257 (64)
//	    321
const (
	RecordSize     = 321
	recHeaderLen   = 65
	recVerifyPlain = 128
	recReadPlain   = 32
	recVerifyOff   = recHeaderLen
	recReadOff     = recVerifyOff + recVerifyPlain + 16
	recSigOff      = recReadOff + recReadPlain + 16
)

const (
	recordSigLabel   = "umbra dir record v1"
	recordVerifyInfo = "umbra dir record verify-part v1"
	recordReadInfo   = "umbra dir record read-part v1"
)

// Record errors.
var (
	ErrRecord        = kind.New(kind.Corrupt, "format: malformed folder record")
	ErrRecordSig     = kind.New(kind.Corrupt, "format: folder record signature does not verify")
	ErrRecordVersion = kind.New(kind.Corrupt, "format: unsupported folder record version")
	ErrRecordKey     = kind.New(kind.Corrupt, "format: folder record does not open with this capability")
)

// Record is a decoded, signature-checked folder record.
type Record struct {
	raw [RecordSize]byte
}

// Pointer is what a record points to: the folder's current snapshot (an
// umbra file) and its check list (an umbra file too: CheckList; zero
// root: none), whose read capability sits in the verify part.
type Pointer struct {
	Snapshot keyring.ReadCap
	Check    keyring.ReadCap
}

// SignRecord makes the record of folder w at seq, valid until expiry,
// pointing to p.
func SignRecord(w keyring.DirWriteCap, seq uint64, expiry time.Time, p Pointer) []byte {
	var salt [16]byte
	if _, err := rand.Read(salt[:]); err != nil {
		panic("format: " + err.Error())
	}
	return signRecord(w, seq, expiry, p, salt)
}

func signRecord(w keyring.DirWriteCap, seq uint64, expiry time.Time, p Pointer, salt16 [16]byte) []byte {
	var r Record
	b := r.raw[:]
	b[0] = RecordVersion
	pub := w.PublicKey()
	copy(b[1:33], pub[:])
	binary.BigEndian.PutUint64(b[33:41], seq)
	binary.BigEndian.PutUint64(b[41:49], uint64(max(expiry.Unix(), 0)))
	copy(b[49:65], salt16[:])
	salt := b[49:65]
	snapVerify := p.Snapshot.Verify()
	vp := make([]byte, 0, recVerifyPlain)
	root, checkRoot := p.Snapshot.Root(), p.Check.Root()
	vp = append(vp, root[:]...)
	vp = append(vp, snapVerify.Key().Bytes()...)
	vp = append(vp, checkRoot[:]...)
	vp = append(vp, p.Check.ReadKey().Bytes()...)
	read := w.Read()
	gcm(read.Verify().VerifyKey(), recordVerifyInfo, salt).Seal(b[recVerifyOff:recVerifyOff], zeroNonce[:], vp, b[:recHeaderLen])
	gcm(read.ReadKey(), recordReadInfo, salt).Seal(b[recReadOff:recReadOff], zeroNonce[:], p.Snapshot.ReadKey().Bytes(), b[:recHeaderLen])
	copy(b[recSigOff:], signBody(w, b))
	return b
}

func signBody(w keyring.DirWriteCap, b []byte) []byte {
	return ed25519.Sign(w.SigningKey(), append([]byte(recordSigLabel), b[:recSigOff]...))
}

var zeroNonce [12]byte

func gcm(k keyring.Key, info string, salt []byte) cipher.AEAD {
	key := k.MAC([]byte(info), salt)
	blk, err := aes.NewCipher(key.Bytes())
	if err != nil {
		panic("format: " + err.Error())
	}
	g, err := cipher.NewGCM(blk)
	if err != nil {
		panic("format: " + err.Error())
	}
	return g
}

// DecodeRecord parses a record and checks its signature. It does not check
// the expiry (Expired) nor which folder it belongs to (ID).
func DecodeRecord(b []byte) (*Record, error) {
	if len(b) != RecordSize {
		return nil, fmt.Errorf("%w: %d bytes, want %d", ErrRecord, len(b), RecordSize)
	}
	if b[0] != RecordVersion {
		return nil, fmt.Errorf("%w 0x%02x", ErrRecordVersion, b[0])
	}
	pub := ed25519.PublicKey(b[1:33])
	if !ed25519.Verify(pub, append([]byte(recordSigLabel), b[:recSigOff]...), b[recSigOff:]) {
		return nil, ErrRecordSig
	}
	r := &Record{}
	copy(r.raw[:], b)
	return r, nil
}

// Bytes returns the record's encoding.
func (r *Record) Bytes() []byte { return r.raw[:] }

// PublicKey returns the folder's public key.
func (r *Record) PublicKey() [32]byte { return [32]byte(r.raw[1:33]) }

// ID returns the folder's id (keyring.DirID of its public key).
func (r *Record) ID() [32]byte { return keyring.DirID(r.PublicKey()) }

// Seq returns the record's sequence number.
func (r *Record) Seq() uint64 { return binary.BigEndian.Uint64(r.raw[33:41]) }

// Expiry returns when the record stops being valid.
func (r *Record) Expiry() time.Time {
	return time.Unix(int64(min(binary.BigEndian.Uint64(r.raw[41:49]), 1<<62)), 0)
}

// Expired reports whether the record is past its expiry at now.
func (r *Record) Expired(now time.Time) bool { return !now.Before(r.Expiry()) }

// Supersedes reports whether r is to be kept over o: a higher sequence
// number; at the same one (two writers raced), the larger bytes, so that
// every node picks the same.
func (r *Record) Supersedes(o *Record) bool {
	if r.Seq() != o.Seq() {
		return r.Seq() > o.Seq()
	}
	return bytes.Compare(r.raw[:], o.raw[:]) > 0
}

// Equal reports whether two records are the same bytes.
func (r *Record) Equal(o *Record) bool { return subtle.ConstantTimeCompare(r.raw[:], o.raw[:]) == 1 }

// OpenVerify opens the verify part with the folder's verify capability:
// the snapshot's verify capability and the check list's read capability
// (zero root: none).
func (r *Record) OpenVerify(v keyring.DirVerifyCap) (snap keyring.VerifyCap, check keyring.ReadCap, err error) {
	if v.PublicKey() != r.PublicKey() {
		return snap, check, fmt.Errorf("%w: another folder's", ErrRecordKey)
	}
	salt := r.raw[49:65]
	vp, err := gcm(v.VerifyKey(), recordVerifyInfo, salt).Open(nil, zeroNonce[:], r.raw[recVerifyOff:recReadOff], r.raw[:recHeaderLen])
	if err != nil {
		return snap, check, ErrRecordKey
	}
	snapKey, _ := keyring.KeyFromBytes(vp[32:64])
	checkKey, _ := keyring.KeyFromBytes(vp[96:128])
	return keyring.NewVerifyCap([32]byte(vp[0:32]), snapKey), keyring.NewReadCap([32]byte(vp[64:96]), checkKey), nil
}

// Open opens both parts with the folder's read capability and returns the
// pointer. The snapshot's read key must derive the verify key the verify
// part names: a verify-capability holder and a reader follow the same
// snapshot.
func (r *Record) Open(c keyring.DirReadCap) (Pointer, error) {
	snapV, check, err := r.OpenVerify(c.Verify())
	if err != nil {
		return Pointer{}, err
	}
	salt := r.raw[49:65]
	rp, err := gcm(c.ReadKey(), recordReadInfo, salt).Open(nil, zeroNonce[:], r.raw[recReadOff:recSigOff], r.raw[:recHeaderLen])
	if err != nil {
		return Pointer{}, ErrRecordKey
	}
	readKey, _ := keyring.KeyFromBytes(rp)
	snap := keyring.NewReadCap(snapV.Root(), readKey)
	if !snap.Verify().Equal(snapV) {
		return Pointer{}, fmt.Errorf("%w: its read and verify parts name different snapshots", ErrRecord)
	}
	return Pointer{Snapshot: snap, Check: check}, nil
}
