package shard

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestFrameKnownAnswer(t *testing.T) {
	var b bytes.Buffer
	l := Lease{Expiry: 7, Hash: [32]byte{0: 0xaa, 31: 0xbb}}
	if err := WriteFrame(&b, TypeStore, StoreParts(l, []byte{1, 2}, []byte("ab"))...); err != nil {
		t.Fatal(err)
	}
	want := append([]byte{0x01, 0x07, 0, 0, 0, 45, 0, 0, 0, 0, 0, 0, 0, 7, 0xaa}, make([]byte, 30)...)
	want = append(want, 0xbb, 2, 1, 2, 'a', 'b')
	if !bytes.Equal(b.Bytes(), want) {
		t.Fatalf("store frame % x", b.Bytes())
	}
	f, _, err := ReadFrame(&b, nil)
	if err != nil || f.Type != TypeStore {
		t.Fatal(err)
	}
	s, err := ParseStore(f.Payload)
	if err != nil || s.Lease != l || !bytes.Equal(s.CID, []byte{1, 2}) || string(s.Data) != "ab" {
		t.Fatalf("parsed %+v %v", s, err)
	}
	secret := [32]byte{0: 0x5e}
	renew := LeaseParts(TypeRenew, 9, secret, []byte{3, 4})
	wantRenew := append(append([]byte{0, 0, 0, 0, 0, 0, 0, 9}, secret[:]...), 2, 3, 4)
	if !bytes.Equal(renew, wantRenew) {
		t.Fatalf("renew payload % x", renew)
	}
	r, err := ParseLease(TypeRenew, renew)
	if err != nil || r.Expiry != 9 || r.Secret != secret || !bytes.Equal(r.CID, []byte{3, 4}) {
		t.Fatalf("renew parsed %+v %v", r, err)
	}
	cancel := LeaseParts(TypeCancel, 9, secret, []byte{3, 4})
	if !bytes.Equal(cancel, wantRenew[8:]) {
		t.Fatalf("cancel payload % x", cancel)
	}
	for _, bad := range [][]byte{nil, wantRenew[:40], append(bytes.Clone(wantRenew), 5), append(bytes.Clone(wantRenew[:40]), 0)} {
		if _, err := ParseLease(TypeRenew, bad); err == nil {
			t.Fatalf("renew % x parsed", bad)
		}
	}
}

func TestReadFrameRejects(t *testing.T) {
	for name, c := range map[string]struct {
		in   []byte
		want error
	}{
		"version":   {[]byte{2, 1, 0, 0, 0, 0}, ErrVersion},
		"too large": {[]byte{1, 1, 0xff, 0xff, 0xff, 0xff}, ErrTooLarge},
		"truncated": {[]byte{1, 1, 0, 0, 0, 9, 1}, io.ErrUnexpectedEOF},
		"short hdr": {[]byte{1, 1}, io.ErrUnexpectedEOF},
	} {
		if _, _, err := ReadFrame(bytes.NewReader(c.in), nil); !errors.Is(err, c.want) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := WriteFrame(io.Discard, TypeBlock, make([]byte, MaxPayload+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized write: %v", err)
	}
}

func TestPayloadParsers(t *testing.T) {
	if _, err := ParseStore([]byte{0, 0, 0, 0, 0, 0, 0, 0, 5, 1}); !errors.Is(err, ErrMalformed) {
		t.Fatal("short store CID accepted")
	}
	if _, err := ParseCID([]byte{3, 1}); !errors.Is(err, ErrMalformed) {
		t.Fatal("bad CID length accepted")
	}
	e, err := ParseError(bytes.Join(ErrorParts(CodeFull, "no room"), nil))
	if err != nil || e.Code != CodeFull || e.Error() != "peer: storage full: no room" {
		t.Fatalf("%v %v", e, err)
	}
}

// FuzzReadFrame decodes arbitrary bytes: no panic, no payload over the cap,
// and a decoded frame re-encodes to the bytes it came from.
func FuzzReadFrame(f *testing.F) {
	var b bytes.Buffer
	WriteFrame(&b, TypeStore, StoreParts(Lease{Expiry: 1}, []byte{1, 85, 18, 32}, []byte("shard"))...)
	f.Add(b.Bytes())
	b.Reset()
	WriteFrame(&b, TypeRenew, LeaseParts(TypeRenew, 5, [32]byte{1}, []byte{1, 85, 18, 32}))
	f.Add(b.Bytes())
	f.Add([]byte{1, 0x82, 0, 0, 0, 1, 9})
	f.Add([]byte{1, 0xE0, 0, 0, 0, 2, 0, 3})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		fr, _, err := ReadFrame(r, nil)
		if err != nil {
			return
		}
		if len(fr.Payload) > MaxPayload {
			t.Fatal("payload over the cap")
		}
		var out bytes.Buffer
		if err := WriteFrame(&out, fr.Type, fr.Payload); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.Bytes(), in[:len(in)-r.Len()]) {
			t.Fatal("re-encoding differs")
		}
		switch fr.Type {
		case TypeStore:
			if s, err := ParseStore(fr.Payload); err == nil && len(s.CID) == 0 {
				t.Fatal("empty CID accepted")
			}
		case TypeRenew, TypeCancel:
			if r, err := ParseLease(fr.Type, fr.Payload); err == nil {
				if len(r.CID) == 0 || !bytes.Equal(LeaseParts(fr.Type, r.Expiry, r.Secret, r.CID), fr.Payload) {
					t.Fatal("lease request does not round-trip")
				}
			}
		case TypeFetch, TypeHas:
			_, _ = ParseCID(fr.Payload)
		case TypeError:
			_, _ = ParseError(fr.Payload)
		}
	})
}

// TestRemoteErrorIsPrintable is finding 8c of the hardening review: an
// ERROR's message is a peer's words and reached the terminal raw.
func TestRemoteErrorIsPrintable(t *testing.T) {
	msg := "not found \x1b]0;pwned\x07\x1b[2J"
	var b bytes.Buffer
	if err := WriteFrame(&b, TypeError, ErrorParts(CodeNotFound, msg)...); err != nil {
		t.Fatal(err)
	}
	f, _, err := ReadFrame(&b, nil)
	if err != nil {
		t.Fatal(err)
	}
	re, err := ParseError(f.Payload)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.ContainsAny([]byte(re.Error()), "\x1b\x07") {
		t.Fatalf("control characters reach the error text: %q", re.Error())
	}
}
