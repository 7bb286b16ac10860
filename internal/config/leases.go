package config

import (
	"fmt"
	"time"
)

// Leases configures how long this node's puts ask peers to keep their
// blocks, and how this node collects the blocks it keeps for others.
type Leases struct {
	// Length is how long a put's leases run: the daemon's maintenance
	// renews them every Maintenance.Interval for what its user put or
	// aliased (and what `maintain add` names). Default "720h" (30 days);
	// "none": peers keep the blocks as long as they allow (two years at
	// most). A node whose daemon stays off longer than this loses the
	// files nobody else maintains.
	Length string `json:",omitempty"`
	// GCInterval is how often expired blocks are collected. Default "1h".
	GCInterval string `json:",omitempty"`
	// GCGrace is how long past its expiry a lease still holds a block
	// (clocks differ, renewals run late). Default "1h".
	GCGrace string `json:",omitempty"`
}

// DefaultLeaseLength is a put's lease length when the config names none.
const DefaultLeaseLength = 30 * 24 * time.Hour

// Durations returns the lease durations, defaults filled in (length 0:
// none).
func (l Leases) Durations() (length, interval, grace time.Duration, err error) {
	length, interval, grace = DefaultLeaseLength, time.Hour, time.Hour
	if l.Length == "none" {
		length, l.Length = 0, ""
	}
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

// Maintenance configures how often the daemon checks, repairs and renews
// the files it maintains (node.MaintainFile).
type Maintenance struct {
	// Interval between runs (each run starts within ±10 % of it). Default
	// "24h".
	Interval string `json:",omitempty"`
}

// Every returns the maintenance interval, default filled in.
func (m Maintenance) Every() (time.Duration, error) {
	if m.Interval == "" {
		return 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(m.Interval)
	if err != nil || d < time.Second {
		return 0, fmt.Errorf("config: Maintenance.Interval %q: a duration of at least 1s", m.Interval)
	}
	return d, nil
}
