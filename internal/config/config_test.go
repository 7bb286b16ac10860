package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/umbra-store/umbra/erasure"
)

func TestParseShards(t *testing.T) {
	for in, ok := range map[string]bool{"3+2": true, "1+0": true, "10+4": true, "128+128": true,
		"0+2": false, "3+-1": false, "200+57": false, "3": false, "a+b": false, "": false, "3+2+1": false} {
		k, m, err := ParseShards(in)
		if (err == nil) != ok {
			t.Errorf("ParseShards(%q) = %d, %d, %v", in, k, m, err)
		}
		if err != nil && !errors.Is(err, erasure.ErrParams) {
			t.Errorf("ParseShards(%q): %v is not ErrParams", in, err)
		}
	}
}

func TestWriteLoad(t *testing.T) {
	dir := t.TempDir()
	if c, err := Load(dir); err != nil || c.Put.Shards != "3+2" {
		t.Fatalf("missing file: %+v %v", c, err)
	}
	c := Default()
	c.Put.Shards = "6+3"
	if err := Write(dir, c); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(filepath.Join(dir, File))
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %o", st.Mode().Perm())
	}
	got, err := Load(dir)
	if err != nil || got.Put.Shards != "6+3" {
		t.Fatalf("load: %+v %v", got, err)
	}
	os.WriteFile(filepath.Join(dir, File), []byte(`{"Version":1,"Put":{"Shards":"3+2"},"Typo":1}`), 0o600)
	if _, err := Load(dir); err == nil {
		t.Fatal("unknown field accepted")
	}
	os.WriteFile(filepath.Join(dir, File), []byte(`{"Version":1,"Put":{"Shards":"0+1"}}`), 0o600)
	if _, err := Load(dir); err == nil {
		t.Fatal("invalid shards accepted")
	}
}

func TestLeaseDurations(t *testing.T) {
	length, interval, grace, err := Leases{}.Durations()
	if err != nil || length != 30*24*time.Hour || interval != time.Hour || grace != time.Hour {
		t.Fatalf("defaults: %v %v %v %v", length, interval, grace, err)
	}
	if length, _, _, err := (Leases{Length: "none"}).Durations(); err != nil || length != 0 {
		t.Fatalf("none: %v %v", length, err)
	}
	length, interval, grace, err = Leases{Length: "2s", GCInterval: "1s", GCGrace: "0s"}.Durations()
	if err != nil || length != 2*time.Second || interval != time.Second || grace != 0 {
		t.Fatalf("a test network's: %v %v %v %v", length, interval, grace, err)
	}
	for _, bad := range []Leases{{Length: "0s"}, {GCInterval: "soon"}, {GCGrace: "-1s"}} {
		c := Default()
		c.Leases = bad
		if err := c.Validate(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}
