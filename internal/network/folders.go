package network

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/umbra-store/umbra/blockstore"
	"github.com/umbra-store/umbra/dht"
	"github.com/umbra-store/umbra/internal/format"
	"github.com/umbra-store/umbra/internal/shard"
)

// MaxHolders is how many peers, this node included, keep a folder's
// record: the connected shard peers nearest the folder's id
// (docs/protocol.md, "Folder records").
const MaxHolders = 16

// Folder record timing.
const (
	holderTimeout = 3 * time.Second  // one holder's answer
	dhtGetTimeout = 10 * time.Second // a DHT lookup when no holder has a record
	dhtPutTimeout = 30 * time.Second
)

// Folders publishes and resolves folder records: on the folder's holders
// (RECORD_PUT, RECORD_GET of the shard protocol; this node's own keeper
// first) and on the DHT.
type Folders struct {
	net    *Net
	client *shard.Client
	dht    *dht.DHT
	bg     context.Context // the daemon's: DHT puts and read repairs run on it
	log    *slog.Logger
}

// NewFolders returns folder records over n's peers; background work runs
// until bg ends.
func NewFolders(bg context.Context, n *Net, c *shard.Client, d *dht.DHT) *Folders {
	return &Folders{net: n, client: c, dht: d, bg: bg, log: n.place.Log}
}

// Holders returns the holders of folder id: this node, then the connected
// shard peers ranked by id, MaxHolders in all.
func (f *Folders) Holders(id [32]byte) []peer.ID {
	ranked := dht.Rank(f.net.ShardPeers(), blockstore.CIDOf(id))
	if len(ranked) > MaxHolders-1 {
		ranked = ranked[:MaxHolders-1]
	}
	return append([]peer.ID{f.net.h.ID()}, ranked...)
}

// answer is one holder's record, nil if it keeps none or failed.
type answer struct {
	p   peer.ID
	rec *format.Record
	err error
}

// errNoAnswer marks a holder that had not answered when ask returned.
var errNoAnswer = errors.New("network: holder did not answer in time")

// ask runs fn on every holder at once (the local keeper answers for this
// node) and returns once all have answered, or a majority has and a grace
// of twice the time that took (at least 20 ms) has passed: one holder
// that never answers must not slow every resolve and publish down to its
// timeout. Holders that had not answered are marked errNoAnswer.
func (f *Folders) ask(ctx context.Context, holders []peer.ID, fn func(ctx context.Context, p peer.ID) answer) []answer {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		i int
		a answer
	}
	results := make(chan result, len(holders)) // stragglers never block
	start := time.Now()
	for i, p := range holders {
		go func() {
			hctx, hcancel := context.WithTimeout(ctx, holderTimeout)
			defer hcancel()
			a := fn(hctx, p)
			results <- result{i, a}
		}()
	}
	out := make([]answer, len(holders))
	for i, p := range holders {
		out[i] = answer{p: p, err: errNoAnswer}
	}
	var grace <-chan time.Time
	for n := 0; n < len(holders); n++ {
		select {
		case r := <-results:
			r.a.p = holders[r.i]
			out[r.i] = r.a
		case <-grace:
			return out
		}
		if grace == nil && 2*(n+1) > len(holders) {
			grace = time.After(max(2*time.Since(start), 20*time.Millisecond))
		}
	}
	return out
}

// check validates a record a peer sent for folder id.
func check(id [32]byte, raw []byte) (*format.Record, error) {
	if raw == nil {
		return nil, nil
	}
	return dht.FolderValidator{}.Check(dht.FolderKey(id), raw)
}

// Resolve returns the distinct valid records of folder id that its holders
// keep, best first; the DHT is asked only when no holder has one. Holders
// that keep an older record, or none, are sent the best (read repair).
func (f *Folders) Resolve(ctx context.Context, id [32]byte) ([]*format.Record, error) {
	holders := f.Holders(id)
	answers := f.ask(ctx, holders, func(ctx context.Context, p peer.ID) answer {
		var raw []byte
		var err error
		if p == f.net.h.ID() {
			raw, err = f.dht.KeptFolder(ctx, id)
		} else {
			raw, err = f.client.GetRecord(ctx, p, id)
		}
		if err != nil {
			return answer{err: err}
		}
		rec, err := check(id, raw)
		return answer{rec: rec, err: err}
	})
	var recs []*format.Record
	failed := 0
	for _, a := range answers {
		if a.err != nil {
			failed++
			f.log.Debug("folder record: holder", "peer", a.p.ShortString(), "err", a.err)
		}
		if a.rec != nil {
			recs = addDistinct(recs, a.rec)
		}
	}
	if len(recs) == 0 {
		if rec := f.fromDHT(ctx, id); rec != nil {
			recs = append(recs, rec)
		}
	}
	if len(recs) == 0 {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, nil
	}
	f.repair(recs[0], answers)
	return recs, nil
}

func (f *Folders) fromDHT(ctx context.Context, id [32]byte) *format.Record {
	dctx, cancel := context.WithTimeout(ctx, dhtGetTimeout)
	defer cancel()
	raw, err := f.dht.GetFolder(dctx, id)
	if err != nil {
		return nil
	}
	rec, err := check(id, raw)
	if err != nil {
		return nil
	}
	return rec
}

// addDistinct adds rec to recs, kept best first, unless it is there.
func addDistinct(recs []*format.Record, rec *format.Record) []*format.Record {
	for _, r := range recs {
		if r.Equal(rec) {
			return recs
		}
	}
	recs = append(recs, rec)
	for i := len(recs) - 1; i > 0 && recs[i].Supersedes(recs[i-1]); i-- {
		recs[i], recs[i-1] = recs[i-1], recs[i]
	}
	return recs
}

// repair offers best, in the background, to the holders that answered
// with an older record or none.
func (f *Folders) repair(best *format.Record, answers []answer) {
	for _, a := range answers {
		if a.err != nil || (a.rec != nil && !best.Supersedes(a.rec)) {
			continue
		}
		go func(p peer.ID) {
			ctx, cancel := context.WithTimeout(f.bg, holderTimeout)
			defer cancel()
			_, _ = f.offer(ctx, p, best)
		}(a.p)
	}
}

// offer offers rec to p (this node: its keeper) and returns the record p
// keeps afterwards, checked.
func (f *Folders) offer(ctx context.Context, p peer.ID, rec *format.Record) (answer, error) {
	var kept []byte
	var err error
	if p == f.net.h.ID() {
		kept, _, err = f.dht.KeepFolder(ctx, rec.Bytes())
	} else {
		kept, _, err = f.client.PutRecord(ctx, p, rec.Bytes())
	}
	if err != nil {
		return answer{err: err}, err
	}
	k, err := check(rec.ID(), kept)
	if err == nil && k == nil {
		err = errors.New("network: holder answered no record")
	}
	return answer{rec: k, err: err}, err
}

// Published is the outcome of a publish.
type Published struct {
	Holders  int              // asked, this node included
	Accepted int              // that keep the record published
	Newer    []*format.Record // records holders keep instead, best first
}

// Publish offers rec to every holder of its folder and, in the
// background, puts it on the DHT.
func (f *Folders) Publish(ctx context.Context, rec *format.Record) (Published, error) {
	holders := f.Holders(rec.ID())
	answers := f.ask(ctx, holders, func(ctx context.Context, p peer.ID) answer {
		a, _ := f.offer(ctx, p, rec)
		return a
	})
	res := Published{Holders: len(holders)}
	for _, a := range answers {
		switch {
		case a.err != nil:
			f.log.Debug("folder record: publish", "peer", a.p.ShortString(), "err", a.err)
		case a.rec.Equal(rec):
			res.Accepted++
		default:
			res.Newer = addDistinct(res.Newer, a.rec)
		}
	}
	if res.Accepted == 0 && ctx.Err() != nil {
		return res, ctx.Err()
	}
	go func() {
		ctx, cancel := context.WithTimeout(f.bg, dhtPutTimeout)
		defer cancel()
		if err := f.dht.PutFolder(ctx, rec.Bytes()); err != nil && f.bg.Err() == nil {
			f.log.Debug("folder record: DHT put", "err", err)
		}
	}()
	return res, nil
}

// LocalFolders keeps folder records in a keeper only: a node used
// without its daemon (--offline) is its folders' one holder.
type LocalFolders struct{ K *dht.Keeper }

// Resolve returns the record kept, if any.
func (l LocalFolders) Resolve(ctx context.Context, id [32]byte) ([]*format.Record, error) {
	rec, err := l.K.Get(ctx, id)
	if rec == nil || err != nil {
		return nil, err
	}
	return []*format.Record{rec}, nil
}

// Publish keeps rec if it is newer than the record kept.
func (l LocalFolders) Publish(ctx context.Context, rec *format.Record) (Published, error) {
	kept, err := l.K.Offer(ctx, rec.Bytes())
	res := Published{Holders: 1}
	switch {
	case errors.Is(err, dht.ErrStale):
		k, err := format.DecodeRecord(kept)
		if err != nil {
			return res, err
		}
		res.Newer = []*format.Record{k}
	case err != nil:
		return res, err
	default:
		res.Accepted = 1
	}
	return res, nil
}
