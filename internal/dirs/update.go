package dirs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/umbra-store/umbra/internal/format"
	"github.com/umbra-store/umbra/internal/kind"
	"github.com/umbra-store/umbra/keyring"
)

// merge3 merges a and b against base (nil: none, keep the union).
func merge3(base, a, b *format.Snapshot) *format.Snapshot {
	out := &format.Snapshot{Parent: a.Parent}
	names := map[string]bool{}
	for _, s := range []*format.Snapshot{a, b} {
		for _, e := range s.Entries {
			names[e.Name] = true
		}
	}
	get := func(s *format.Snapshot, name string) *format.DirEntry {
		if s == nil {
			return nil
		}
		if i, ok := s.Find(name); ok {
			return &s.Entries[i]
		}
		return nil
	}
	for name := range names {
		ea, eb, e0 := get(a, name), get(b, name), get(base, name)
		var pick *format.DirEntry
		switch {
		case sameEntry(ea, eb):
			pick = ea
		case base != nil && sameEntry(ea, e0):
			pick = eb // b changed it (or removed it)
		case base != nil && sameEntry(eb, e0):
			pick = ea
		case ea == nil:
			pick = eb
		case eb == nil:
			pick = ea
		case eb.MTime > ea.MTime:
			pick = eb
		default:
			pick = ea
		}
		if pick != nil {
			out.Set(*pick)
		}
	}
	return out
}

func sameEntry(a, b *format.DirEntry) bool {
	if a == nil || b == nil {
		return a == b
	}
	sa := format.Snapshot{Entries: []format.DirEntry{*a}}
	sb := format.Snapshot{Entries: []format.DirEntry{*b}}
	ba, errA := sa.Encode()
	bb, errB := sb.Encode()
	return errA == nil && errB == nil && bytes.Equal(ba, bb)
}

// errUnchanged: an op found nothing to change.
var errUnchanged = errors.New("dirs: unchanged")

// update applies op to the newest version of folder w and publishes the
// result, again on top of whatever won if other writers raced. op must
// give the same result when applied again to a version that already holds
// its change; it returns errUnchanged when there is nothing to publish.
func (s *Service) update(ctx context.Context, w keyring.DirWriteCap, op func(*format.Snapshot) error) error {
	for attempt := 0; ; attempt++ {
		v, err := s.resolveAs(ctx, w.Read(), &w)
		if err != nil {
			return err
		}
		if v.rec.Seq() == math.MaxUint64 {
			return fmt.Errorf("%w: the folder's sequence numbers are used up", ErrConflict)
		}
		next := clone(v.snap)
		if err := op(next); err != nil {
			if !errors.Is(err, errUnchanged) {
				return err
			}
			if !v.merged {
				return nil
			}
			// Merged from racing versions: publish all the same, so that
			// the race ends.
		}
		parent := v.ptr.Snapshot
		next.Parent = &format.Parent{Root: parent.Root(), SealedKey: w.SealParent(parent)}
		won, err := s.publish(ctx, w, v.rec.Seq()+1, next, &parent)
		if err != nil || won {
			return err
		}
		if attempt+1 >= maxAttempts {
			return ErrConflict
		}
		// Lost a race: back off a little, at random, and go again.
		d := time.Duration(1+rand.IntN(10*min(attempt+1, 10))) * time.Millisecond
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d):
		}
	}
}

// publish stores snap and publishes it as folder w's version seq; won is
// whether a majority of the holders kept it. Without a majority and with no
// newer version kept instead, it fails (Busy).
func (s *Service) publish(ctx context.Context, w keyring.DirWriteCap, seq uint64, snap *format.Snapshot, prior *keyring.ReadCap) (won bool, err error) {
	c, err := s.putSnapshot(ctx, snap, prior)
	if err != nil {
		return false, err
	}
	check, err := s.putCheckList(ctx, snap)
	if err != nil {
		return false, err
	}
	raw := format.SignRecord(w, seq, s.o.Now().Add(s.o.Validity), format.Pointer{Snapshot: c, Check: check})
	rec, err := format.DecodeRecord(raw)
	if err != nil {
		return false, fmt.Errorf("dirs: own record: %w", err)
	}
	res, err := s.recs.Publish(ctx, rec)
	if err != nil {
		return false, err
	}
	if 2*res.Accepted > res.Holders {
		return true, nil
	}
	if len(res.Newer) == 0 {
		// No other version won: holders failed to answer, or refused.
		// Not a conflict to retry at once.
		return false, kind.Mark(fmt.Errorf("dirs: %d of the folder's %d holders kept its record, not a majority; try again", res.Accepted, res.Holders), kind.Busy)
	}
	return false, nil
}

// create publishes the first version of a new folder: empty.
func (s *Service) create(ctx context.Context, w keyring.DirWriteCap) error {
	won, err := s.publish(ctx, w, 1, &format.Snapshot{}, nil)
	if err == nil && !won {
		err = fmt.Errorf("%w: a new folder's first record was refused", ErrConflict)
	}
	return err
}
