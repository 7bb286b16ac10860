package dht

import (
	"context"
	"crypto/rand"
	"testing"

	ds "github.com/ipfs/go-datastore"
	dsq "github.com/ipfs/go-datastore/query"
	dssync "github.com/ipfs/go-datastore/sync"
	dhtpb "github.com/libp2p/go-libp2p-kad-dht/pb"
	recpb "github.com/libp2p/go-libp2p-record/pb"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-msgio/pbio"
)

// recordBytes counts what a datastore holds.
func recordBytes(t *testing.T, store ds.Datastore) (n, bytes int) {
	t.Helper()
	res, err := store.Query(context.Background(), dsq.Query{})
	if err != nil {
		t.Fatal(err)
	}
	for r := range res.Next() {
		n++
		bytes += len(r.Key) + len(r.Value)
	}
	return n, bytes
}

// TestProviderRecordsBounded is the review's finding on the DHT: any
// connected peer could write provider records for keys of its choosing
// into the node's database, without limit and outside Storage.MaxBytes
// (50,000 records, 10.5 MB, against a 64 KiB quota in a second). The
// records are now capped, and kad-dht's /pk and /ipns value records, which
// umbra does not use, are refused.
func TestProviderRecordsBounded(t *testing.T) {
	ctx := context.Background()
	const limit = 64 << 10
	victimStore := dssync.MutexWrap(ds.NewMapDatastore())
	hs, _ := testDHTsOn(t, []ds.Batching{victimStore, nil}, WithRecordLimit(limit))
	victim, attacker := hs[0], hs[1]
	s, err := attacker.NewStream(ctx, victim.ID(), ProtocolPrefix+"/kad/1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	w := pbio.NewDelimitedWriter(s)
	self := peer.AddrInfo{ID: attacker.ID(), Addrs: attacker.Addrs()}
	key := make([]byte, 80)
	for i := range 5000 {
		rand.Read(key)
		m := dhtpb.NewMessage(dhtpb.Message_ADD_PROVIDER, key, 0)
		m.ProviderPeers = dhtpb.RawPeerInfosToPBPeers([]peer.AddrInfo{self})
		if err := w.WriteMsg(m); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	// The victim handles one stream's messages in order: a request after
	// the flood is answered only once the flood was handled.
	r := pbio.NewDelimitedReader(s, 1<<20)
	if err := w.WriteMsg(dhtpb.NewMessage(dhtpb.Message_PING, nil, 0)); err != nil {
		t.Fatal(err)
	}
	var resp dhtpb.Message
	if err := r.ReadMsg(&resp); err != nil || resp.GetType() != dhtpb.Message_PING {
		t.Fatalf("ping after the flood: %v %v", resp.GetType(), err)
	}
	// A /pk record, which kad-dht would store by default: refused (the
	// victim resets the stream).
	s2, err := attacker.NewStream(ctx, victim.ID(), ProtocolPrefix+"/kad/1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	pub, _ := crypto.MarshalPublicKey(attacker.Peerstore().PubKey(attacker.ID()))
	pk := []byte("/pk/" + string(attacker.ID()))
	m := dhtpb.NewMessage(dhtpb.Message_PUT_VALUE, pk, 0)
	m.Record = &recpb.Record{Key: pk, Value: pub}
	if err := pbio.NewDelimitedWriter(s2).WriteMsg(m); err != nil {
		t.Fatal(err)
	}
	if err := pbio.NewDelimitedReader(s2, 1<<20).ReadMsg(&resp); err == nil {
		t.Fatalf("the /pk record was accepted: %v", resp.GetType())
	}
	n, bytes := recordBytes(t, victimStore)
	t.Logf("one peer's 5,000 ADD_PROVIDERs left %d records, %d bytes (limit %d)", n, bytes, limit)
	if bytes > limit {
		t.Fatalf("one peer wrote %d bytes of DHT records, past the %d-byte limit", bytes, limit)
	}
	if v, err := victimStore.Get(ctx, ds.NewKey("/pk/"+string(attacker.ID()))); err == nil {
		t.Fatalf("a /pk record was stored (%d bytes)", len(v))
	}
}
