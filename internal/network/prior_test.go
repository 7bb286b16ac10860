package network

import (
	"bytes"
	"context"
	"testing"

	"github.com/umbra-store/umbra/blockstore"
	"github.com/umbra-store/umbra/internal/engine"
	"github.com/umbra-store/umbra/internal/randstream"
	"github.com/umbra-store/umbra/internal/xfer"
	"github.com/umbra-store/umbra/keyring"
)

// TestPriorChunksAdopted: a put given a prior version reuses the chunks it
// shares with it only where the prior's holders take this put's lease. An
// honest prior (this node's earlier put) costs no STORE for them. A prior
// of the very same chunks whose manifest hints at nobody — what a
// co-writer could publish from this node's chunk keys and digests, or an
// offline put — leaves nothing to adopt: those chunks are placed anew, and
// the new version reads back on another node.
func TestPriorChunksAdopted(t *testing.T) {
	ctx := context.Background()
	ns := newNodes(t, 5, false, 0)
	warmUp(t, ns)
	secrets := keyring.NewSecrets(keyring.GenerateKey())
	e := engine.New(ns[0].store, secrets, engine.WithNetwork(ns[0].net))
	v1 := randstream.Bytes(21, 6<<20)
	v2 := bytes.Clone(v1)
	copy(v2[len(v2)-100:], "an edit at the end")
	put := func(data []byte, prior *keyring.ReadCap) (keyring.ReadCap, int64) {
		t.Helper()
		var c xfer.Counters
		res, err := e.Put(xfer.With(ctx, &c), bytes.NewReader(data), engine.PutOptions{Prior: prior})
		if err != nil {
			t.Fatal(err)
		}
		return res.Cap, c.Report().Stored
	}
	r1, all := put(v1, nil)
	if _, again := put(v2, &r1); again*2 > all {
		t.Fatalf("an honest prior: %d shards stored again of %d", again, all)
	}
	// The same chunks, put offline elsewhere: no holders in its manifest.
	offline := engine.New(openStore(t), secrets)
	res0, err := offline.Put(ctx, bytes.NewReader(v1), engine.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r0 := res0.Cap
	copyManifest(t, offline, r0, ns[0])
	r2, stored := put(v2, &r0)
	if stored < all*3/4 {
		t.Fatalf("a prior hinting at nobody: only %d shards stored of %d", stored, all)
	}
	var out bytes.Buffer
	reader := engine.New(ns[3].store, keyring.Secrets{}, engine.WithNetwork(ns[3].net))
	if err := reader.Get(ctx, r2, &out); err != nil || !bytes.Equal(out.Bytes(), v2) {
		t.Fatalf("the new version on another node: %v", err)
	}
}

// openStore opens a block store of its own in a temporary directory.
func openStore(t *testing.T) *blockstore.Store {
	t.Helper()
	st, err := blockstore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// copyManifest copies the manifest nodes of c from e's store into n's:
// the prior a co-writer publishes, without its shards.
func copyManifest(t *testing.T, e *engine.Engine, c keyring.ReadCap, n testNode) {
	t.Helper()
	err := e.Walk(context.Background(), c.Verify(), func(_ [32]byte, block []byte, _ int) error {
		b, _ := blockstore.NewBlock(bytes.Clone(block))
		return n.store.Put(context.Background(), b)
	}, func(engine.Stripe) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
}
