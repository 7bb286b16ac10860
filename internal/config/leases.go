package config

import (
	"fmt"
	"time"
)

// Leases configures how long this node's puts ask peers to keep their
// blocks, and how this node collects the blocks it keeps for others.
type Leases struct {
	// Length is how long a put's leases run. Default "" (none: peers keep
	// the blocks as long as they allow, two years at most), since nothing
	// renews leases yet; a length is for test networks, and `put --expire`
	// sets one for a single file.
	Length string `json:",omitempty"`
	// GCInterval is how often expired blocks are collected. Default "1h".
	GCInterval string `json:",omitempty"`
	// GCGrace is how long past its expiry a lease still holds a block
	// (clocks differ, renewals run late). Default "1h".
	GCGrace string `json:",omitempty"`
}

// Durations returns the lease durations, defaults filled in (length 0:
// none).
func (l Leases) Durations() (length, interval, grace time.Duration, err error) {
	interval, grace = time.Hour, time.Hour
	parse := func(name, v string, min time.Duration, into *time.Duration) error {
		if v == "" {
			return nil
		}
		d, err := time.ParseDuration(v)
		if err != nil || d < min {
			return fmt.Errorf("config: Leases.%s %q: a duration of at least %v", name, v, min)
		}
		*into = d
		return nil
	}
	for _, p := range []struct {
		name, v string
		min     time.Duration
		into    *time.Duration
	}{
		{"Length", l.Length, time.Second, &length},
		{"GCInterval", l.GCInterval, time.Second, &interval},
		{"GCGrace", l.GCGrace, 0, &grace},
	} {
		if err := parse(p.name, p.v, p.min, p.into); err != nil {
			return 0, 0, 0, err
		}
	}
	return length, interval, grace, nil
}
