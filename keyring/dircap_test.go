package keyring

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func fixedDirCap() DirWriteCap {
	seed, _ := KeyFromBytes(bytes.Repeat([]byte{0x33}, 32))
	return NewDirWriteCap(seed)
}

// TestDirCapKnownAnswer pins the three texts of one directory and its id
// (docs/format.md, "Directory capabilities", carries the same vectors).
func TestDirCapKnownAnswer(t *testing.T) {
	w := fixedDirCap()
	for _, c := range []struct{ got, want string }{
		{w.Encode(), "umbra:dw:aebrps3z7mvucihswhwglzazrvxarmuoqe76wapeuqaihg4f4gaibtrtgmztgmztgmztgmztgmztgmztgmztgmztgmztgmztgmztgmztgps7jznh"},
		{w.Read().Encode(), "umbra:dr:aecbps3z7mvucihswhwglzazrvxarmuoqe76wapeuqaihg4f4gaibtrudknr7u5e6rqkcsxwmmn63mdoge5vjnv3g6ct5wkddt6pckqbmmlmwllw"},
		{w.Read().Verify().Encode(), "umbra:dv:aecrps3z7mvucihswhwglzazrvxarmuoqe76wapeuqaihg4f4gaibtxicqvbj6s2kjuovsdtxee7yv5wrvprxpaho5mxlhqgqjyuqu2raro7yqvy"},
		{fmt.Sprintf("%x", w.ID()), "a894a2e70423142a32794eb3706b02dc5372780752af4ade1238c5944eaf6126"},
		{fmt.Sprintf("%x", w.WriteKey().Bytes()), "6c38076fe9dbe2d7d042af21f13136d2fc206a233d05078daa41318ed3bb36ed"},
	} {
		if c.got != c.want {
			t.Errorf("changed: %s", c.got)
		}
	}
}

func TestDirCapRoundTrip(t *testing.T) {
	for i := 0; i < 20; i++ {
		w := GenerateDirWriteCap()
		got, err := ParseCap(w.Encode())
		if err != nil || !got.(DirWriteCap).Equal(w) {
			t.Fatalf("write round trip: %v", err)
		}
		r, err := ParseDirReadCap(w.Encode()) // attenuated
		if err != nil || !r.Equal(w.Read()) || r.ID() != w.ID() {
			t.Fatalf("read from write: %v", err)
		}
		if r2, err := ParseDirReadCap(w.Read().Encode()); err != nil || !r2.Equal(w.Read()) {
			t.Fatalf("read round trip: %v", err)
		}
		v := w.Read().Verify()
		for _, s := range []string{w.Encode(), w.Read().Encode(), v.Encode()} {
			if got, err := ParseDirVerifyCap(s); err != nil || !got.Equal(v) {
				t.Fatalf("verify from %s: %v", s[:9], err)
			}
		}
		// The keys differ at each step: attenuation hides the stronger key.
		if w.Read().ReadKey().Equal(w.Seed()) || v.VerifyKey().Equal(w.Read().ReadKey()) || w.WriteKey().Equal(w.Read().ReadKey()) {
			t.Fatal("attenuation kept a key")
		}
	}
}

func TestDirCapParseErrors(t *testing.T) {
	w := fixedDirCap()
	other := GenerateDirWriteCap()
	// A write cap whose public key is not its seed's: its checksum is right.
	body := []byte{CapVersion, byte(KindDirWrite)}
	pub := other.PublicKey()
	body = append(body, pub[:]...)
	body = append(body, w.Seed().Bytes()...)
	body = append(body, checksum(KindDirWrite, body)...)
	mismatched := capPrefix + "dw:" + capEncoding.EncodeToString(body)
	if _, err := ParseCap(mismatched); !errors.Is(err, ErrMalformed) {
		t.Fatalf("write cap with a foreign public key: %v", err)
	}
	// A file cap is not a folder cap, and the other way round.
	if _, err := ParseDirReadCap(fixedCap().Encode()); !errors.Is(err, ErrWrongKind) {
		t.Fatalf("file cap as folder cap: %v", err)
	}
	if _, err := ParseDirVerifyCap(fixedCap().Encode()); !errors.Is(err, ErrWrongKind) {
		t.Fatalf("file cap as folder verify cap: %v", err)
	}
	if _, err := ParseReadCap(w.Read().Encode()); !errors.Is(err, ErrWrongKind) {
		t.Fatalf("folder cap as file cap: %v", err)
	}
	// A verify cap cannot be raised to a read cap.
	if _, err := ParseDirReadCap(w.Read().Verify().Encode()); !errors.Is(err, ErrWrongKind) {
		t.Fatalf("verify cap as read cap: %v", err)
	}
	// A kind name that says dr over a dw payload.
	s := w.Encode()
	if _, err := ParseCap("umbra:dr:" + strings.TrimPrefix(s, "umbra:dw:")); err == nil {
		t.Fatal("name and payload disagree, accepted")
	}
}

func TestDirCapsDoNotPrint(t *testing.T) {
	w := fixedDirCap()
	for _, v := range []any{w, w.Read(), w.Read().Verify()} {
		s := fmt.Sprintf("%v %+v %s", v, v, v)
		if strings.Contains(s, w.Encode()[9:20]) || strings.Contains(s, w.Read().Encode()[9:20]) || !strings.Contains(s, "[redacted]") {
			t.Fatalf("printed: %s", s)
		}
	}
}

func TestSealChild(t *testing.T) {
	parent, child, other := GenerateDirWriteCap(), GenerateDirWriteCap(), GenerateDirWriteCap()
	sealed := parent.SealChild(child)
	got, ok := parent.OpenChild(child.PublicKey(), sealed)
	if !ok || !got.Equal(child) {
		t.Fatal("a sealed child seed does not open")
	}
	if _, ok := other.OpenChild(child.PublicKey(), sealed); ok {
		t.Fatal("another folder's write key opened a child seed")
	}
	sealed[3] ^= 1
	if _, ok := parent.OpenChild(child.PublicKey(), sealed); ok {
		t.Fatal("an altered child seed opened")
	}
	if bytes.Contains(sealed[:], child.Seed().Bytes()[:8]) {
		t.Fatal("the seed shows through")
	}
}
