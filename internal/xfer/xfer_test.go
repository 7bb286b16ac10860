package xfer

import (
	"context"
	"testing"
	"time"
)

func TestCounters(t *testing.T) {
	var nilC *Counters // counts nothing, never panics
	nilC.Asked(true, true)
	nilC.FromPeer("p", 1)
	nilC.Time(Fetch, time.Now())
	if r := nilC.Report(); r.Asked != 0 || From(context.Background()) != nil {
		t.Fatalf("nil counters: %+v", r)
	}

	c := new(Counters)
	ctx := With(context.Background(), c)
	x := From(ctx)
	for range 4 {
		x.Stripe(3)
	}
	for i := range 14 {
		x.Asked(i >= 12, false)
		if i < 13 {
			x.Received(i < 4)
		}
	}
	x.Decoded()
	x.FromPeer("a", 100)
	x.FromPeer("a", 50)
	x.ToPeer("b", 7)
	x.Time(Open, time.Now().Add(-time.Second))
	r := c.Report()
	want := Report{Stripes: 4, Asked: 14, Received: 13, Local: 4, Wasted: 1, Hedged: 2, Decoded: 1}
	if r.Stripes != want.Stripes || r.Asked != want.Asked || r.Received != want.Received || r.Local != want.Local ||
		r.Wasted != want.Wasted || r.Hedged != want.Hedged || r.Decoded != want.Decoded {
		t.Fatalf("report %+v, want %+v", r, want)
	}
	if r.OverK < 1.08 || r.OverK > 1.09 { // 13 received for 12 needed
		t.Fatalf("received over needed %v", r.OverK)
	}
	if len(r.Peers) != 2 || r.Peers[0] != (PeerReport{Peer: "a", BytesIn: 150, ShardsIn: 2}) || r.Peers[1] != (PeerReport{Peer: "b", BytesOut: 7, ShardsOut: 1}) {
		t.Fatalf("peers %+v", r.Peers)
	}
	if r.Stages["open"] < 1 {
		t.Fatalf("stages %v", r.Stages)
	}

	var total Counters
	total.Add(c)
	total.Add(c)
	tr := total.Report()
	if tr.Received != 26 || tr.Wasted != 2 || tr.Peers[0].BytesIn != 300 || tr.Stages["open"] < 2 {
		t.Fatalf("sum %+v", tr)
	}
}
