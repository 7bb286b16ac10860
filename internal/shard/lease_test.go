package shard

import (
	"context"
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"github.com/umbra-store/umbra/blockstore"
)

// TestLeaseRequests: a STORE leaves its lease on the receiver; RENEW with
// the secret runs it longer (or adds a second storer's); CANCEL needs the
// secret; a lease on a block not held, or a cancel with another secret, is
// not found.
func TestLeaseRequests(t *testing.T) {
	ctx := context.Background()
	c, p, st := pair(t, serverOpts{})
	b, _ := blockstore.NewBlock([]byte("leased block"))
	secret := [32]byte{1, 2, 3}
	hash := sha256.Sum256(secret[:])
	soon := uint64(time.Now().Add(time.Hour).Unix())
	if err := c.Store(ctx, p, b, Lease{Expiry: soon, Hash: hash}); err != nil {
		t.Fatal(err)
	}
	ls, _ := st.Leases(ctx, b.Cid())
	if len(ls) != 1 || ls[0] != (Lease{Expiry: soon, Hash: hash}) {
		t.Fatalf("leases after STORE: %+v", ls)
	}
	if err := c.Renew(ctx, p, b.Cid(), secret, soon+3600); err != nil {
		t.Fatal(err)
	}
	other := [32]byte{9}
	if err := c.Renew(ctx, p, b.Cid(), other, soon); err != nil {
		t.Fatal(err)
	}
	ls, _ = st.Leases(ctx, b.Cid())
	if len(ls) != 2 {
		t.Fatalf("leases after RENEW: %+v", ls)
	}
	for _, l := range ls {
		if l.Hash == hash && l.Expiry != soon+3600 {
			t.Fatalf("renewed lease runs until %d", l.Expiry)
		}
	}
	var re *RemoteError
	if err := c.Cancel(ctx, p, b.Cid(), [32]byte{7}); !errors.As(err, &re) || re.Code != CodeNotFound {
		t.Fatalf("cancel with a secret nobody leased with: %v", err)
	}
	if err := c.Renew(ctx, p, b.Cid(), [32]byte{8}, 1); !errors.As(err, &re) || re.Code != CodeMalformed {
		t.Fatalf("a lease expired in 1970: %v", err)
	}
	absent, _ := blockstore.NewBlock([]byte("not stored"))
	if err := c.Renew(ctx, p, absent.Cid(), secret, soon); !errors.As(err, &re) || re.Code != CodeNotFound {
		t.Fatalf("renew of a block not held: %v", err)
	}
	if err := c.Cancel(ctx, p, b.Cid(), secret); err != nil {
		t.Fatal(err)
	}
	ls, _ = st.Leases(ctx, b.Cid())
	for _, l := range ls {
		if l.Hash == hash && l.Expiry > uint64(time.Now().Unix()) {
			t.Fatalf("cancelled lease runs until %d", l.Expiry)
		}
	}
}
