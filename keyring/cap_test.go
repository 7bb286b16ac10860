package keyring

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func fixedCap() ReadCap {
	var root [32]byte
	copy(root[:], bytes.Repeat([]byte{0x11}, 32))
	k, _ := KeyFromBytes(bytes.Repeat([]byte{0x22}, 32))
	return NewReadCap(root, k)
}

// TestCapKnownAnswer pins the text of a read capability and of its verify
// capability (docs/format.md, "Capabilities", carries the same vectors).
func TestCapKnownAnswer(t *testing.T) {
	rc := fixedCap()
	const wantFR = "umbra:fr:aearceirceirceirceirceirceirceirceirceirceirceirceircejceirceirceirceirceirceirceirceirceirceirceirceircej5p4upa"
	const wantFV = "umbra:fv:aebbceirceirceirceirceirceirceirceirceirceirceirceircenlhwmsqmhmrkk7cup7jbpz6rumybytcdqorg5eibxyzkih5f2rtacxj4bx"
	if got := rc.Encode(); got != wantFR {
		t.Errorf("read cap changed:\n%s", got)
	}
	if got := rc.Verify().Encode(); got != wantFV {
		t.Errorf("verify cap changed:\n%s", got)
	}
}

func TestCapRoundTrip(t *testing.T) {
	for i := 0; i < 50; i++ {
		var root [32]byte
		copy(root[:], GenerateKey().Bytes())
		rc := NewReadCap(root, GenerateKey())
		s := rc.Encode()
		if !strings.HasPrefix(s, "umbra:fr:") || len(s) != 9+112 {
			t.Fatalf("bad text %q", s)
		}
		got, err := ParseReadCap(s)
		if err != nil || !got.Equal(rc) {
			t.Fatalf("round trip: %v", err)
		}
		vc, err := ParseVerifyCap(rc.Verify().Encode())
		if err != nil || !vc.Equal(rc.Verify()) {
			t.Fatalf("verify round trip: %v", err)
		}
		// A read cap given where a verify cap is wanted is attenuated.
		if vc2, err := ParseVerifyCap(s); err != nil || !vc2.Equal(rc.Verify()) {
			t.Fatalf("attenuation: %v", err)
		}
	}
}

func TestCapParseErrors(t *testing.T) {
	good := fixedCap().Encode()
	data := strings.TrimPrefix(good, "umbra:fr:")
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'a' {
			b[i] = 'b'
		} else {
			b[i] = 'a'
		}
		return string(b)
	}
	for _, c := range []struct {
		name, in string
		want     error
	}{
		{"empty", "", ErrMalformed},
		{"no prefix", "fr:" + data, ErrMalformed},
		{"no kind", "umbra:" + data, ErrMalformed},
		{"unknown kind", "umbra:xx:" + data, ErrUnknownKind},
		{"truncated", good[:60], ErrTruncated},
		{"too long", good + "a", ErrMalformed},
		{"typo", flip(good, 40), ErrChecksum},
		{"typo in checksum", flip(good, len(good)-3), ErrChecksum},
		{"uppercase", "umbra:fr:" + strings.ToUpper(data), ErrMalformed},
		{"kind swapped", "umbra:fv:" + data, ErrChecksum},
		{"padding", good[:len(good)-1] + "=", ErrMalformed},
		{"space", good[:50] + " " + good[51:], ErrMalformed},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseCap(c.in)
			if !errors.Is(err, c.want) {
				t.Fatalf("ParseCap(%q) = %v, want %v", c.in, err, c.want)
			}
		})
	}
	if _, err := ParseReadCap(fixedCap().Verify().Encode()); !errors.Is(err, ErrWrongKind) {
		t.Fatalf("verify cap as read cap: %v", err)
	}
}

// TestEveryCharacterCounts changes each character of a capability in turn:
// every change is refused. (70 bytes are exactly 112 base32 characters, so no
// character carries spare bits that could encode one value two ways.)
func TestEveryCharacterCounts(t *testing.T) {
	good := fixedCap().Encode()
	for i := len("umbra:fr:"); i < len(good); i++ {
		b := []byte(good)
		b[i] = "bcdefghijklmnopqrstuvwxyz234567a"[strings.IndexByte("abcdefghijklmnopqrstuvwxyz234567", b[i])]
		if _, err := ParseCap(string(b)); err == nil {
			t.Fatalf("change at %d accepted", i)
		}
	}
}

func TestSecretsDoNotPrint(t *testing.T) {
	rc := fixedCap()
	text := rc.Encode()
	key := rc.ReadKey()
	var logged bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logged, nil))
	log.Info("x", "cap", rc, "vcap", rc.Verify(), "key", key)
	log.Info("y", "any", any(rc))
	dir := &Keys{Secrets: NewSecrets(key)}
	log.Info("dir", "dir", dir, "secrets", dir.Secrets)
	jlog := slog.New(slog.NewJSONHandler(&logged, nil))
	jlog.Info("z", "cap", rc, "key", key)
	for _, s := range []string{
		fmt.Sprint(rc), fmt.Sprintf("%v %+v %#v %s %x %q", rc, rc, rc, rc, rc, rc),
		fmt.Sprintf("%v %+v %#v %s %x %q", key, key, key, key, key, key),
		fmt.Sprintf("%v %#v", rc.Verify(), rc.Verify()),
		fmt.Sprintf("%v", []any{rc, key}),
		fmt.Sprintf("%v %+v", &Keys{Secrets: NewSecrets(key)}, Keys{Secrets: NewSecrets(key)}),
		logged.String(),
	} {
		if strings.Contains(s, text[9:20]) || strings.Contains(s, "2222") || strings.Contains(s, "\"\"\"") {
			t.Fatalf("secret printed: %s", s)
		}
		if !strings.Contains(s, "redacted") {
			t.Fatalf("no redaction marker in %q", s)
		}
	}
}

func TestKeyDerivationKnownAnswer(t *testing.T) {
	k, _ := KeyFromBytes(bytes.Repeat([]byte{0x22}, 32))
	vk := k.Derive(VerifyKeyInfo)
	if got := fmt.Sprintf("%x", vk.Bytes()); got != "ab3d992830ec8a95f151ff485f9f468cc071310e0e89ba4406f8ca907e975198" {
		t.Fatalf("verify key derivation changed: %s", got)
	}
}

func FuzzParseCap(f *testing.F) {
	f.Add(fixedCap().Encode())
	f.Add(fixedCap().Verify().Encode())
	f.Add(fixedDirCap().Encode())
	f.Add(fixedDirCap().Read().Encode())
	f.Add(fixedDirCap().Read().Verify().Encode())
	f.Add("umbra:fr:")
	f.Add("umbra:xx:aaaa")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCap(s)
		if err != nil {
			return
		}
		if got := c.Encode(); got != s {
			t.Fatalf("ParseCap(%q).Encode() = %q", s, got)
		}
	})
}
