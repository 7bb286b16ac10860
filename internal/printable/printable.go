// Package printable makes text from elsewhere safe to print on a terminal.
// Error messages from remote peers and names from manifests are written by
// whoever made them; an escape sequence among them could rewrite what a
// terminal shows (or, on some terminals, answer back).
package printable

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// String returns s with every control character (C0, DEL, C1: newlines
// and escapes included), every bidirectional-text control and every invalid
// UTF-8 byte replaced by U+FFFD. Other text is unchanged.
func String(s string) string {
	if clean(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && size == 1) || unsafe(r) {
			r = utf8.RuneError
		}
		b.WriteRune(r)
		i += size
	}
	return b.String()
}

func clean(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f {
			return false
		}
	}
	return true
}

// unsafe reports runes a terminal acts on rather than shows.
func unsafe(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r)
}

// PlainName reports whether a stored name is one plain path element: not
// empty, no separator, not ".", ".." or "-" (standard output), no control
// character (NUL included), at most 255 bytes.
func PlainName(name string) bool {
	if name == "" || name == "." || name == ".." || name == "-" || len(name) > 255 || strings.ContainsRune(name, '/') {
		return false
	}
	return String(name) == name
}
