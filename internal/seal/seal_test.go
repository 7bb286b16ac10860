package seal

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/umbra-store/umbra/keyring"
)

func testKey(b byte) keyring.Key {
	k, _ := keyring.KeyFromBytes(bytes.Repeat([]byte{b}, 32))
	return k
}

func TestPadmeKnownAnswers(t *testing.T) {
	for _, c := range []struct{ in, want int }{
		{0, 0}, {1, 1}, {2, 2}, {3, 3}, {9, 10}, {100, 104}, {1000, 1024}, {1025, 1088},
		{1 << 20, 1 << 20}, {1<<20 + 1, 1<<20 + 1<<15}, {3<<20 + 12345, 3<<20 + 1<<16},
	} {
		if got := Padme(c.in); got != c.want {
			t.Errorf("Padme(%d) = %d, want %d", c.in, got, c.want)
		}
	}
}

func TestPadmeOverheadBound(t *testing.T) {
	for n := 1; n < 1<<24; n = n*3/2 + 1 {
		p := Padme(n)
		if p < n || float64(p-n)/float64(n) > 0.12 {
			t.Fatalf("Padme(%d) = %d", n, p)
		}
	}
}

func TestPadRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, 2, 15, 16, 17, 1000, 1 << 16, 1<<16 + 1} {
		plain := bytes.Repeat([]byte{0}, n) // zeros: the terminator must still be found
		p := Pad(make([]byte, PaddedLen(n)), plain)
		got, err := Unpad(p)
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("n=%d: %v", n, err)
		}
	}
}

func TestUnpadRejects(t *testing.T) {
	for name, in := range map[string][]byte{
		"empty":         {},
		"no terminator": {1, 2, 3, 0, 0},
		"wrong marker":  {1, 2, 0x81},
		"too much pad":  append([]byte{1, 0x80}, make([]byte, 40)...),
		"all zero":      make([]byte, 8),
	} {
		if _, err := Unpad(in); !errors.Is(err, ErrPadding) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestSealKnownAnswer pins the sealed bytes of a short message.
func TestSealKnownAnswer(t *testing.T) {
	got := Seal(nil, testKey(0x01), []byte("umbra"))
	const want = "01ca58faae14bb78a71937a7270b0ff6c8d19ce86398da"
	if hex.EncodeToString(got) != want {
		t.Fatalf("sealed bytes changed: %x", got)
	}
	if len(got) != SealedLen(5) {
		t.Fatalf("length %d, want %d", len(got), SealedLen(5))
	}
}

func TestConvergentKeyKnownAnswer(t *testing.T) {
	// HMAC-SHA256(32 × 0x02, "umbra chunk v2" ‖ BLAKE3-256("umbra")),
	// recomputed with @noble/hashes (blake3, hmac, sha256) in Node.js;
	// BLAKE3-256("umbra") = aa9bc214…86d998.
	k := ConvergentKey(testKey(0x02), []byte("umbra"))
	if got := hex.EncodeToString(k.Bytes()); got != "f4891cd0ba60d8c0e6707384a20793a04745b747c83958f1ffa7e71337e59835" {
		t.Fatalf("convergent key changed: %s", got)
	}
	if ConvergentKey(testKey(0x03), []byte("umbra")).Equal(k) {
		t.Fatal("a different secret gave the same key")
	}
}

func TestOpenRejectsTampering(t *testing.T) {
	plain := bytes.Repeat([]byte("secret "), 1000)
	sealed := Seal(nil, testKey(4), plain)
	got, err := Open(nil, testKey(4), sealed)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("open: %v", err)
	}
	if _, err := Open(nil, testKey(5), sealed); !errors.Is(err, ErrAuth) {
		t.Fatalf("wrong key: %v", err)
	}
	for _, i := range []int{1, len(sealed) / 2, len(sealed) - 1} {
		bad := bytes.Clone(sealed)
		bad[i] ^= 0x10
		if out, err := Open(nil, testKey(4), bad); !errors.Is(err, ErrAuth) || out != nil {
			t.Fatalf("flipped byte %d: %v", i, err)
		}
	}
	bad := bytes.Clone(sealed)
	bad[0] = 0x02
	if _, err := Open(nil, testKey(4), bad); !errors.Is(err, ErrSuite) {
		t.Fatalf("unknown suite: %v", err)
	}
	if _, err := Open(nil, testKey(4), sealed[:10]); !errors.Is(err, ErrShort) {
		t.Fatalf("short: %v", err)
	}
}

func TestSealInPlaceOpen(t *testing.T) {
	plain := []byte("open in place")
	sealed := Seal(nil, testKey(6), plain)
	got, err := Open(sealed[1:1], testKey(6), sealed)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("in place: %v", err)
	}
}

// TestSealInPlace seals a plaintext lying at dst[1:] (where the engine's
// chunker puts it): the result matches sealing from a separate buffer.
func TestSealInPlace(t *testing.T) {
	plain := bytes.Repeat([]byte("in place "), 1000)
	want := Seal(nil, testKey(7), plain)
	buf := make([]byte, SealedLen(len(plain)))
	copy(buf[1:], plain)
	got := Seal(buf, testKey(7), buf[1:1+len(plain)])
	if !bytes.Equal(got, want) {
		t.Fatal("sealing in place differs from sealing a copy")
	}
}

func FuzzUnpad(f *testing.F) {
	f.Add([]byte{0x80})
	f.Add([]byte{1, 2, 3, 0x80})
	f.Add(append([]byte("hello"), 0x80, 0, 0))
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := Unpad(in)
		if err != nil {
			return
		}
		// Accepted inputs are exactly what Pad writes.
		again := Pad(make([]byte, PaddedLen(len(out))), out)
		if !bytes.Equal(again, in) {
			t.Fatalf("Unpad accepted %x, Pad gives %x", in, again)
		}
	})
}
