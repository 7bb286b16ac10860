package engine

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/umbra-store/umbra/blockstore"
	"github.com/umbra-store/umbra/internal/format"
	"github.com/umbra-store/umbra/internal/seal"
	"github.com/umbra-store/umbra/keyring"
)

// TestPutWritesBLAKE3Shards: a put writes manifest version 0x03, whose
// shards the store holds under blake3 CIDs, and its nodes under sha2-256.
func TestPutWritesBLAKE3Shards(t *testing.T) {
	ctx := context.Background()
	bs := openStore(t)
	e := New(bs, testSecrets(61))
	res, err := e.Put(ctx, bytes.NewReader(bytes.Repeat([]byte("umbra "), 50000)), PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	root, err := bs.Get(ctx, blockstore.CIDOf(res.Cap.Root()))
	if err != nil {
		t.Fatal(err)
	}
	if v := root.RawData()[0]; v != 0x03 {
		t.Fatalf("root node version 0x%02x", v)
	}
	for _, ent := range leafEntries(t, e, res.Cap) {
		for _, d := range ent.Shards {
			if ok, _ := bs.Has(ctx, blockstore.CIDWith(blockstore.BLAKE3, d)); !ok {
				t.Fatalf("shard %x… not held under its blake3 CID", d[:4])
			}
			if ok, _ := bs.Has(ctx, blockstore.CIDOf(d)); ok {
				t.Fatalf("shard %x… held under a sha2-256 CID", d[:4])
			}
		}
	}
}

// TestReadsSHA256Manifests: files put before version 0x03 (SHA-256 shard
// digests, manifest version 0x02) still read, and the verify walk names
// their shards by sha2-256 CIDs. A node whose version names the other
// function than its shards were stored under reads nothing.
func TestReadsSHA256Manifests(t *testing.T) {
	ctx := context.Background()
	bs := openStore(t)
	e := New(bs, testSecrets(62))
	plain := bytes.Repeat([]byte("stored before "), 3000)
	file := func(h blockstore.Hash, version uint64) keyring.ReadCap {
		ent := storeChunkHash(t, bs, plain, 3, 2, h)
		n := &format.Node{K: 3, M: 2, Suite: seal.SuiteAES256GCM, ShardHash: version, Entries: []format.Entry{ent}, Size: ent.Size}
		root := storeNode(t, bs, n)
		return keyring.NewReadCap(root.Child, root.Key)
	}
	old := file(blockstore.SHA256, format.ShardSHA256)
	var got bytes.Buffer
	if err := e.Get(ctx, old, &got); err != nil || !bytes.Equal(got.Bytes(), plain) {
		t.Fatalf("version 0x02 file: %v (%d bytes)", err, got.Len())
	}
	stripes := 0
	err := e.Walk(ctx, old.Verify(), func([32]byte, []byte, int) error { return nil }, func(s Stripe) error {
		stripes++
		for i := range s.Shards {
			if c := s.CID(i); c.Prefix().MhType != uint64(blockstore.SHA256) {
				t.Fatalf("stripe names shard %d by %v", i, c)
			}
			if ok, _ := bs.Has(ctx, s.CID(i)); !ok {
				t.Fatalf("shard %d of the walk is not held", i)
			}
		}
		return nil
	})
	if err != nil || stripes == 0 {
		t.Fatalf("walk: %v, %d stripes", err, stripes)
	}
	for name, c := range map[string]keyring.ReadCap{
		"sha2-256 shards in a version 0x03 node": file(blockstore.SHA256, format.ShardBLAKE3),
		"blake3 shards in a version 0x02 node":   file(blockstore.BLAKE3, format.ShardSHA256),
	} {
		got.Reset()
		err := e.Get(ctx, c, &got)
		if err == nil || !errors.Is(err, ErrNotFound) || bytes.Contains(got.Bytes(), plain[:100]) {
			t.Fatalf("%s: %v, %d bytes", name, err, got.Len())
		}
	}
}
