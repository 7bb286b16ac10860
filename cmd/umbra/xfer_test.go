package main

import (
	"encoding/json"
	"testing"

	"github.com/umbra-store/umbra/internal/api"
	"github.com/umbra-store/umbra/internal/testnet"
	"github.com/umbra-store/umbra/internal/xfer"
)

// TestTransferCounters: put --json and get --json say where a file's
// shards went and came from, and status sums them. With every holder up
// a get fetches k shards a stripe, the one this node holds among them
// (parity or not); with two killed it asks for more, decodes, and still
// reads every stripe.
func TestTransferCounters(t *testing.T) {
	st := up(t, testnet.Options{Nodes: 5})
	in, data := randomFile(t, 7, 8<<20)
	var put api.PutResult
	if err := json.Unmarshal([]byte(mustRunArgs(t, st.Nodes[0].UmbraPath, "put", "--json", in)), &put); err != nil || put.Stats == nil {
		t.Fatalf("put --json: %v %+v", err, put)
	}
	ps := put.Stats
	var sent int64
	for _, p := range ps.Peers {
		sent += p.BytesOut
	}
	// 3+2: five shards a stripe, one kept here, the rest sent.
	if ps.Stripes < int64(put.Chunks) || ps.Stored != 5*ps.Stripes || sent < int64(len(data)) {
		t.Fatalf("put counters: %+v (%d chunks, %d bytes sent)", ps, put.Chunks, sent)
	}
	n2 := st.Nodes[2].UmbraPath
	get := func() xfer.Report {
		t.Helper()
		var res getResult
		out := mustRunArgs(t, n2, "get", "--json", "-o", t.TempDir()+"/out", put.Cap)
		if err := json.Unmarshal([]byte(out), &res); err != nil || res.Size != uint64(len(data)) {
			t.Fatalf("get --json: %q %v", out, err)
		}
		return res.Stats
	}
	all := get()
	if all.Stripes != ps.Stripes || all.Received < 3*all.Stripes || all.OverK > 1.05 || all.Local != all.Stripes || len(all.Peers) == 0 {
		t.Fatalf("get with every holder up: %+v", all)
	}
	kill(t, st.Nodes[3])
	kill(t, st.Nodes[4])
	down := get()
	if down.Stripes != ps.Stripes || down.Decoded == 0 || down.Asked <= down.Received {
		t.Fatalf("get with two holders killed: %+v", down)
	}
	var s api.Status
	if err := json.Unmarshal([]byte(mustRunArgs(t, n2, "status", "--json")), &s); err != nil {
		t.Fatal(err)
	}
	if s.Transfers.Stripes != all.Stripes+down.Stripes || s.Transfers.Received != all.Received+down.Received {
		t.Fatalf("status sums %+v, gets %+v and %+v", s.Transfers, all, down)
	}
}
