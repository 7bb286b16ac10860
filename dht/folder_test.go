package dht

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/umbra-store/umbra/internal/format"
	"github.com/umbra-store/umbra/internal/kind"
	"github.com/umbra-store/umbra/keyring"
)

func testRecord(w keyring.DirWriteCap, seq uint64, valid time.Duration) []byte {
	p := format.Pointer{Snapshot: keyring.NewReadCap([32]byte(keyring.GenerateKey().Bytes()), keyring.GenerateKey())}
	return format.SignRecord(w, seq, time.Now().Add(valid), p)
}

// TestFolderValidator performs each forgery the validator must refuse.
func TestFolderValidator(t *testing.T) {
	v := FolderValidator{}
	w, other := keyring.GenerateDirWriteCap(), keyring.GenerateDirWriteCap()
	key := FolderKey(w.ID())
	good := testRecord(w, 5, time.Hour)
	if err := v.Validate(key, good); err != nil {
		t.Fatal(err)
	}
	badSig := append([]byte(nil), good...)
	badSig[len(badSig)-1] ^= 1
	cases := map[string]struct {
		key string
		rec []byte
	}{
		"bad signature": {key, badSig},
		"wrong key":     {key, testRecord(other, 9, time.Hour)},
		"expired":       {key, testRecord(w, 9, -time.Second)},
		"garbage":       {key, []byte("not a record")},
	}
	for name, c := range cases {
		if err := v.Validate(c.key, c.rec); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// Select: the highest sequence; invalid values never win.
	low, high := testRecord(w, 4, time.Hour), testRecord(w, 6, time.Hour)
	forgedHigh := testRecord(other, 100, time.Hour)
	i, err := v.Select(key, [][]byte{low, forgedHigh, badSig, high, good})
	if err != nil || i != 3 {
		t.Fatalf("Select = %d, %v; want 3", i, err)
	}
	// Two records of one seq: every node picks the same.
	a, b := testRecord(w, 7, time.Hour), testRecord(w, 7, time.Hour)
	i1, _ := v.Select(key, [][]byte{a, b})
	i2, _ := v.Select(key, [][]byte{b, a})
	if i1 != 1-i2 {
		t.Fatal("tie broken by order")
	}
}

// TestKeeperKeepsNewest: the keeper keeps only a newer record, refuses a
// lower or racing one with the one it keeps, and forgets expired ones.
func TestKeeperKeepsNewest(t *testing.T) {
	_, ds := testDHTs(t, 1)
	d, ctx := ds[0], context.Background()
	w := keyring.GenerateDirWriteCap()
	r5 := testRecord(w, 5, time.Hour)
	if _, ok, err := d.KeepFolder(ctx, r5); !ok || err != nil {
		t.Fatal(err)
	}
	if _, ok, err := d.KeepFolder(ctx, r5); !ok || err != nil {
		t.Fatalf("the same record again: %v", err)
	}
	for name, rec := range map[string][]byte{"lower": testRecord(w, 4, time.Hour), "racing": testRecord(w, 5, time.Hour)} {
		kept, ok, err := d.KeepFolder(ctx, rec)
		if ok || err != nil || string(kept) != string(r5) {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if _, _, err := d.KeepFolder(ctx, testRecord(w, 9, -time.Second)); !errors.Is(err, ErrRecordExpired) || kind.Of(err) != kind.Corrupt {
		t.Fatalf("expired: %v", err)
	}
	r6 := testRecord(w, 6, time.Hour)
	if _, ok, err := d.KeepFolder(ctx, r6); !ok || err != nil {
		t.Fatal(err)
	}
	if got, _ := d.KeptFolder(ctx, w.ID()); string(got) != string(r6) {
		t.Fatal("newer record not kept")
	}
	// An expired kept record is forgotten.
	d.keeper.v.Now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	if got, err := d.KeptFolder(ctx, w.ID()); got != nil || err != nil {
		t.Fatalf("expired record served: %v", err)
	}
}

// TestFolderRecordOnDHT: a record put by one node is found by another;
// after the record age it is gone from the DHT and a republish brings it
// back.
func TestFolderRecordOnDHT(t *testing.T) {
	_, ds := testDHTs(t, 3, WithRecordAge(time.Second))
	ctx := context.Background()
	w := keyring.GenerateDirWriteCap()
	rec := testRecord(w, 1, time.Hour)
	for _, d := range ds {
		waitRoutingTable(t, d, 1)
	}
	if err := ds[1].PutFolder(ctx, rec); err != nil {
		t.Fatal(err)
	}
	got, err := ds[2].GetFolder(ctx, w.ID())
	if err != nil || string(got) != string(rec) {
		t.Fatalf("get: %v", err)
	}
	if _, _, err := ds[2].KeepFolder(ctx, rec); err != nil {
		t.Fatal(err)
	}
	// Polled at twice the record's age: a get that finds the record on one
	// peer puts it again to the peers of its lookup that lack it
	// (kad-dht's fix-up), with a new age. Under load the peers' copies came
	// apart in age, and a get every 100 ms kept the record alive from one
	// to the other past the 20 s.
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := ds[0].GetFolder(ctx, w.ID()); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("record outlived its age on the DHT")
		}
		time.Sleep(2 * time.Second) // polling the DHT, not synchronising
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go ds[2].RepublishFolders(rctx, 0, time.Hour)
	for {
		if got, err := ds[0].GetFolder(ctx, w.ID()); err == nil && string(got) == string(rec) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("republished record not found")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitRoutingTable waits until d's routing table holds n peers (kad-dht
// adds a connected peer once identify has shown it speaks the protocol).
func waitRoutingTable(t *testing.T, d *DHT, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for d.kad.RoutingTable().Size() < n {
		if time.Now().After(deadline) {
			t.Fatalf("routing table has %d peers", d.kad.RoutingTable().Size())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestKeeperBounded: records valid for ever are refused; one peer's new
// folders stop at its share, the keeper's at its limit, while kept folders
// still renew.
func TestKeeperBounded(t *testing.T) {
	_, ds := testDHTs(t, 1)
	d, ctx := ds[0], context.Background()
	w := keyring.GenerateDirWriteCap()
	if _, _, err := d.KeepFolder(ctx, testRecord(w, 1, 100*365*24*time.Hour)); !errors.Is(err, ErrRecordTooLong) {
		t.Fatalf("a record valid for a century: %v", err)
	}
	k := d.Keeper()
	k.max = 5
	kept := keyring.GenerateDirWriteCap()
	if _, _, err := d.KeepFolderFrom(ctx, "rogue", testRecord(kept, 1, time.Hour)); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		if _, _, err := d.KeepFolderFrom(ctx, "rogue", testRecord(keyring.GenerateDirWriteCap(), 1, time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	_, _, err := d.KeepFolderFrom(ctx, "honest", testRecord(keyring.GenerateDirWriteCap(), 1, time.Hour))
	if !errors.Is(err, ErrTooManyFolders) || kind.Of(err) != kind.Full {
		t.Fatalf("a folder past the limit: %v", err)
	}
	if _, ok, err := d.KeepFolderFrom(ctx, "honest", testRecord(kept, 2, time.Hour)); !ok || err != nil {
		t.Fatalf("a kept folder's renewal refused: %v", err)
	}
	k.max = 1 << 30
	k.perPeer["rogue"] = maxFoldersPerPeer
	if _, _, err := d.KeepFolderFrom(ctx, "rogue", testRecord(keyring.GenerateDirWriteCap(), 1, time.Hour)); !errors.Is(err, ErrTooManyFolders) {
		t.Fatalf("a peer past its share: %v", err)
	}
	if _, _, err := d.KeepFolderFrom(ctx, "honest", testRecord(keyring.GenerateDirWriteCap(), 1, time.Hour)); err != nil {
		t.Fatalf("another peer refused: %v", err)
	}
}
