package dirs

import (
	"context"

	"github.com/umbra-store/umbra/internal/format"
	"github.com/umbra-store/umbra/keyring"
)

// maxRefresh bounds the folders one Refresh looks at.
const maxRefresh = 100_000

// Refresh renews the records of folder w and of the folders under it it
// can write, those with less than half their validity left: a folder that
// does not change must not expire while its writer runs. It returns how
// many it renewed.
func (s *Service) Refresh(ctx context.Context, w keyring.DirWriteCap) (int, error) {
	seen := map[[32]byte]bool{}
	queue := []keyring.DirWriteCap{w}
	renewed := 0
	for len(queue) > 0 && len(seen) < maxRefresh {
		cur := queue[0]
		queue = queue[1:]
		if seen[cur.ID()] {
			continue // linked twice, or inside itself
		}
		seen[cur.ID()] = true
		v, err := s.resolve(ctx, cur.Read())
		if err != nil {
			if ctx.Err() != nil {
				return renewed, ctx.Err()
			}
			s.o.Log.Warn("folder refresh: resolve", "err", err)
			continue
		}
		if v.rec.Expiry().Sub(s.o.Now()) < s.o.Validity/2 {
			if err := s.update(ctx, cur, func(*format.Snapshot) error { return nil }); err != nil {
				s.o.Log.Warn("folder refresh: publish", "err", err)
			} else {
				renewed++
			}
		}
		for _, e := range v.snap.Entries {
			if e.Kind == format.EntryDir && e.HasSeed {
				if c, ok := cur.OpenChild(e.Dir.PublicKey(), e.Seed); ok {
					queue = append(queue, c)
				}
			}
		}
	}
	return renewed, nil
}
