package main

import (
	"strings"
	"testing"
)

// TestInterspersed: command flags move ahead of arguments, and global flags
// given after the command name move ahead of it ("umbra put --offline F"
// is what a new user types).
func TestInterspersed(t *testing.T) {
	app := newApp()
	for in, want := range map[string]string{
		"umbra put --offline F":                  "umbra --offline put F",
		"umbra put F --offline --json":           "umbra --offline put --json F",
		"umbra get CAP -o FILE":                  "umbra get -o FILE CAP",
		"umbra --path P get CAP -o - --force":    "umbra --path P get -o - --force CAP",
		"umbra get CAP --path P":                 "umbra --path P get CAP",
		"umbra get --path=P CAP":                 "umbra --path=P get CAP",
		"umbra put -":                            "umbra put -",
		"umbra put -- -o":                        "umbra put -- -o",
		"umbra cap verify CAP --verbose":         "umbra --verbose cap verify CAP",
		"umbra testnet up --nodes 3 --dir D":     "umbra testnet up --nodes 3 --dir D",
		"umbra testnet status --json --dir D -v": "umbra -v testnet status --json --dir D",
		"umbra nonsense --offline":               "umbra nonsense --offline",
		"umbra --offline":                        "umbra --offline",
	} {
		got := strings.Join(interspersed(app, strings.Fields(in)), " ")
		if got != want {
			t.Errorf("%q: %q, want %q", in, got, want)
		}
	}
}
