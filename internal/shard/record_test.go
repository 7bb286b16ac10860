package shard

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/umbra-store/umbra/dht"
	"github.com/umbra-store/umbra/internal/format"
	"github.com/umbra-store/umbra/keyring"
)

func keeperDHT(t *testing.T) *dht.DHT {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	d, err := dht.New(ctx, testHost(t), dssync.MutexWrap(ds.NewMapDatastore()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func signed(w keyring.DirWriteCap, seq uint64, valid time.Duration) []byte {
	p := format.Pointer{Snapshot: keyring.NewReadCap([32]byte(keyring.GenerateKey().Bytes()), keyring.GenerateKey())}
	return format.SignRecord(w, seq, time.Now().Add(valid), p)
}

// TestRecordMessages: a record put is kept and served, a lower or racing
// one answered with the newer, an invalid one refused without ending the
// stream, a peer not accepted refused.
func TestRecordMessages(t *testing.T) {
	c, p, _ := pair(t, serverOpts{ServerOptions: ServerOptions{Records: keeperDHT(t)}})
	ctx := context.Background()
	w := keyring.GenerateDirWriteCap()
	if got, err := c.GetRecord(ctx, p, w.ID()); got != nil || err != nil {
		t.Fatalf("get before any put: %x %v", got, err)
	}
	r2 := signed(w, 2, time.Hour)
	if kept, ok, err := c.PutRecord(ctx, p, r2); !ok || err != nil || !bytes.Equal(kept, r2) {
		t.Fatalf("put: %v %v", ok, err)
	}
	if got, err := c.GetRecord(ctx, p, w.ID()); err != nil || !bytes.Equal(got, r2) {
		t.Fatalf("get: %v", err)
	}
	for _, stale := range [][]byte{signed(w, 1, time.Hour), signed(w, 2, time.Hour)} {
		kept, ok, err := c.PutRecord(ctx, p, stale)
		if ok || err != nil || !bytes.Equal(kept, r2) {
			t.Fatalf("stale put: %v %v", ok, err)
		}
	}
	bad := signed(w, 3, time.Hour)
	bad[100] ^= 1
	for name, rec := range map[string][]byte{"forged": bad, "expired": signed(w, 4, -time.Minute), "garbage": []byte("x"), "huge": make([]byte, 2000)} {
		_, _, err := c.PutRecord(ctx, p, rec)
		var re *RemoteError
		if !errors.As(err, &re) || re.Code != CodeInvalid {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if got, err := c.GetRecord(ctx, p, w.ID()); err != nil || !bytes.Equal(got, r2) {
		t.Fatalf("the kept record changed: %v", err)
	}
}

func TestRecordPutRefused(t *testing.T) {
	c, p, _ := pair(t, serverOpts{ServerOptions: ServerOptions{Records: keeperDHT(t), Accept: func(peer.ID) bool { return false }}})
	_, _, err := c.PutRecord(context.Background(), p, signed(keyring.GenerateDirWriteCap(), 1, time.Hour))
	var re *RemoteError
	if !errors.As(err, &re) || re.Code != CodeRefused {
		t.Fatalf("put from a peer not accepted: %v", err)
	}
}
