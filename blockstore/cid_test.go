package blockstore

import (
	"context"
	"encoding/hex"
	"errors"
	"testing"

	blocks "github.com/ipfs/go-block-format"
)

// TestHashKnownAnswers pins both functions blocks are named by: the BLAKE3
// vectors of its specification (the empty input) and of go-multihash
// ("foo"), and FIPS 180-2's SHA-256 of "abc".
func TestHashKnownAnswers(t *testing.T) {
	for _, c := range []struct {
		h    Hash
		in   string
		want string
	}{
		{BLAKE3, "", "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"},
		{BLAKE3, "foo", "04e0bb39f30b1a3feb89f536c93be15055482df748674b00d26e5a75777702e9"},
		{SHA256, "abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
	} {
		got := c.h.Sum([]byte(c.in))
		if hex.EncodeToString(got[:]) != c.want {
			t.Errorf("%v(%q) = %x", c.h, c.in, got)
		}
	}
	// The CID of a shard: CIDv1, raw (0x55), multihash blake3 (0x1e) of
	// 32 bytes.
	c := CIDWith(BLAKE3, BLAKE3.Sum([]byte("foo")))
	if got := hex.EncodeToString(c.Bytes()); got != "0155"+"1e20"+"04e0bb39f30b1a3feb89f536c93be15055482df748674b00d26e5a75777702e9" {
		t.Fatalf("blake3 CID bytes %s", got)
	}
}

// TestBLAKE3Blocks: a block named by blake3 is stored and read like one
// named by sha2-256, and bytes that do not hash to the name are refused,
// as for sha2-256.
func TestBLAKE3Blocks(t *testing.T) {
	ctx := context.Background()
	s := openT(t, t.TempDir())
	big := make([]byte, 300<<10) // packed, not inline
	for i := range big {
		big[i] = byte(i * 7)
	}
	for _, data := range [][]byte{[]byte("a small shard"), big} {
		b, d := NewBlockHash(BLAKE3, data)
		if d != BLAKE3.Sum(data) || b.Cid() != CIDWith(BLAKE3, d) {
			t.Fatal("NewBlockHash names the block by something else")
		}
		if err := s.Put(ctx, b); err != nil {
			t.Fatal(err)
		}
		got, err := s.Get(ctx, b.Cid())
		if err != nil || string(got.RawData()) != string(data) {
			t.Fatalf("get: %v", err)
		}
		if ok, _ := s.Has(ctx, CIDOf(SHA256.Sum(data))); ok {
			t.Fatal("the blake3 block is held under its sha2-256 name too")
		}
		forged, err := blocks.NewBlockWithCid(append([]byte("x"), data...), b.Cid())
		if err != nil {
			t.Fatal(err)
		}
		if err := Verify(forged.Cid(), forged.RawData()); !errors.Is(err, ErrHashMismatch) {
			t.Fatalf("verify of other bytes: %v", err)
		}
		s2 := openT(t, t.TempDir())
		if err := s2.Put(ctx, forged); !errors.Is(err, ErrHashMismatch) {
			t.Fatalf("put of other bytes under a blake3 name: %v", err)
		}
	}
}

// TestUnknownHashPanics: a Hash other than SHA256 or BLAKE3 never names a
// block (a zero value would otherwise make CIDs no store accepts).
func TestUnknownHashPanics(t *testing.T) {
	for _, h := range []Hash{0, 0x13, 0x11e} {
		for name, f := range map[string]func(){
			"Sum":     func() { h.Sum([]byte("x")) },
			"CIDWith": func() { CIDWith(h, [32]byte{}) },
		} {
			func() {
				defer func() {
					if recover() == nil {
						t.Errorf("%s(0x%x) did not panic", name, uint64(h))
					}
				}()
				f()
			}()
		}
	}
}
