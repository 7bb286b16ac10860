package printable

import "testing"

// TestString is finding 8c of the hardening review: error text from remote
// peers reached the terminal raw, escape sequences included.
func TestString(t *testing.T) {
	for in, want := range map[string]string{
		"plain text, 100 EUR":          "plain text, 100 EUR",
		"naïve café ☕":                 "naïve café ☕",
		"\x1b[2J\x1b]0;owned\x07title": "\ufffd[2J\ufffd]0;owned\ufffdtitle",
		"line\nbreak\rreturn\ttab":     "line\ufffdbreak\ufffdreturn\ufffdtab",
		"c1 \u009b31m csi":             "c1 \ufffd31m csi",
		"del\x7f":                      "del\ufffd",
		"bad \xff utf8":                "bad \ufffd utf8",
		"bidi \u202egnp.exe":           "bidi \ufffdgnp.exe",
	} {
		if got := String(in); got != want {
			t.Errorf("String(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzString(f *testing.F) {
	f.Add("\x1b[31mred")
	f.Fuzz(func(t *testing.T, s string) {
		out := String(s)
		for _, r := range out {
			if unsafe(r) {
				t.Fatalf("%q left %U", s, r)
			}
		}
		if String(out) != out {
			t.Fatal("not idempotent")
		}
	})
}
