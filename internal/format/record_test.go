package format

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/umbra-store/umbra/keyring"
)

func fixedFolder() keyring.DirWriteCap {
	seed, _ := keyring.KeyFromBytes(bytes.Repeat([]byte{0x33}, 32))
	return keyring.NewDirWriteCap(seed)
}

func fixedPointer() Pointer {
	k, _ := keyring.KeyFromBytes(bytes.Repeat([]byte{0x22}, 32))
	return Pointer{Snapshot: keyring.NewReadCap([32]byte(bytes.Repeat([]byte{0x11}, 32)), k)}
}

func fixedRecord() []byte {
	var salt [16]byte
	copy(salt[:], bytes.Repeat([]byte{0x44}, 16))
	return signRecord(fixedFolder(), 7, time.Unix(2000000000, 0), fixedPointer(), salt)
}

// TestRecordKnownAnswer pins a record (docs/format.md, "Folder record",
// gives the same inputs and digest; the full hex is in
// testdata/record-v1.hex).
func TestRecordKnownAnswer(t *testing.T) {
	b := fixedRecord()
	want, err := readHex("testdata/record-v1.hex")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, want) {
		t.Fatalf("record changed:\n%x", b)
	}
	if got := sha256.Sum256(b); hex.EncodeToString(got[:]) != "16e9c9598b79da46fd809d5943f6b23a45d52ded00ce7289980ee99ac30f4141" {
		t.Fatalf("record digest changed: %x", got)
	}
}

func readHex(path string) ([]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return hex.DecodeString(string(bytes.Join(bytes.Fields(raw), nil)))
}

func TestRecordRoundTrip(t *testing.T) {
	w := keyring.GenerateDirWriteCap()
	p := Pointer{Snapshot: keyring.NewReadCap([32]byte(keyring.GenerateKey().Bytes()), keyring.GenerateKey())}
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	raw := SignRecord(w, 42, exp, p)
	r, err := DecodeRecord(raw)
	if err != nil {
		t.Fatal(err)
	}
	if r.Seq() != 42 || !r.Expiry().Equal(exp) || r.ID() != w.ID() || r.Expired(time.Now()) || !r.Expired(exp) {
		t.Fatalf("fields: seq %d expiry %v", r.Seq(), r.Expiry())
	}
	got, err := r.Open(w.Read())
	if err != nil || !got.Snapshot.Equal(p.Snapshot) {
		t.Fatalf("open: %v", err)
	}
	// A verify-capability holder reaches the snapshot's verify cap, not its read key.
	snapV, _, err := r.OpenVerify(w.Read().Verify())
	if err != nil || !snapV.Equal(p.Snapshot.Verify()) {
		t.Fatalf("open verify: %v", err)
	}
	// Two records of the same content differ (fresh salt).
	if bytes.Equal(raw, SignRecord(w, 42, exp, p)) {
		t.Fatal("salt not fresh")
	}
}

// TestRecordForgeries flips every byte of a record: none decodes. And
// records open only with their own folder's capabilities.
func TestRecordForgeries(t *testing.T) {
	raw := fixedRecord()
	for i := range raw {
		b := bytes.Clone(raw)
		b[i] ^= 0x01
		if _, err := DecodeRecord(b); err == nil {
			t.Fatalf("byte %d flipped: accepted", i)
		}
	}
	if _, err := DecodeRecord(raw[:RecordSize-1]); !errors.Is(err, ErrRecord) {
		t.Fatalf("short: %v", err)
	}
	// Re-signed by another folder's key with the public key swapped in:
	// the signature is the other key's, not P's.
	other := keyring.GenerateDirWriteCap()
	forged := SignRecord(other, 8, time.Now().Add(time.Hour), fixedPointer())
	copy(forged[1:33], raw[1:33])
	if _, err := DecodeRecord(forged); !errors.Is(err, ErrRecordSig) {
		t.Fatalf("another key's signature: %v", err)
	}
	r, err := DecodeRecord(raw)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Open(other.Read()); !errors.Is(err, ErrRecordKey) {
		t.Fatalf("opened with another folder's cap: %v", err)
	}
	// Right public key, wrong read key (a crafted dr text).
	wrong := keyring.NewDirReadCap(fixedFolder().PublicKey(), keyring.GenerateKey())
	if _, err := r.Open(wrong); !errors.Is(err, ErrRecordKey) {
		t.Fatalf("opened with a wrong read key: %v", err)
	}
}

// TestRecordPartsDisagree: a writer that names one snapshot to verify-cap
// holders and another to readers is refused.
func TestRecordPartsDisagree(t *testing.T) {
	w := fixedFolder()
	p := fixedPointer()
	raw := SignRecord(w, 1, time.Now().Add(time.Hour), p)
	// Re-seal the read part with another read key, then re-sign.
	salt := raw[49:65]
	other := keyring.GenerateKey()
	gcm(w.Read().ReadKey(), recordReadInfo, salt).Seal(raw[recReadOff:recReadOff], zeroNonce[:], other.Bytes(), raw[:recHeaderLen])
	copy(raw[recSigOff:], signBody(w, raw))
	r, err := DecodeRecord(raw)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Open(w.Read()); !errors.Is(err, ErrRecord) {
		t.Fatalf("parts disagree: %v", err)
	}
}

func FuzzRecordDecode(f *testing.F) {
	f.Add(fixedRecord())
	f.Add(make([]byte, RecordSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeRecord(b)
		if err != nil {
			return
		}
		if !bytes.Equal(r.Bytes(), b) {
			t.Fatal("bytes changed")
		}
		_, _ = r.Open(fixedFolder().Read())
	})
}
