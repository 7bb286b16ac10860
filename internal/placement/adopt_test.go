package placement

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/umbra-store/umbra/blockstore"
	"github.com/umbra-store/umbra/internal/shard"
)

// okRemote answers OK to every RENEW (a holder that holds the shards, or
// a peer that lies: the session cannot tell) and records them.
type okRemote struct {
	mu     sync.Mutex
	renews map[peer.ID]int
}

func (r *okRemote) Store(context.Context, peer.ID, blocks.Block, shard.Lease) error { return nil }
func (r *okRemote) Sync(context.Context, peer.ID) error                             { return nil }
func (r *okRemote) Renew(_ context.Context, p peer.ID, _ cid.Cid, _ [32]byte, _ uint64) error {
	r.mu.Lock()
	r.renews[p]++
	r.mu.Unlock()
	return nil
}

type nopLocal struct{}

func (nopLocal) PutManyDeferred(context.Context, []blocks.Block) error { return nil }
func (nopLocal) Sync(context.Context) error                            { return nil }
func (nopLocal) PutLeased(context.Context, []blocks.Block, []blockstore.Lease, blockstore.LeaseBy) error {
	return nil
}
func (nopLocal) AddLease(context.Context, cid.Cid, blockstore.Lease, blockstore.LeaseBy) error {
	return nil
}

type nopAnn struct{}

func (nopAnn) Announce(cid.Cid) {}

// stripeFixture is this node, four candidate peers and a stripe of five
// shards.
func stripeFixture(t *testing.T) (peer.ID, []peer.ID, []blocks.Block) {
	t.Helper()
	var peers []peer.ID
	for range 4 {
		peers = append(peers, testPeer(t))
	}
	shards := make([]blocks.Block, 5)
	for i := range shards {
		shards[i] = blocks.NewBlock([]byte{byte(i), 's', 'h', 'a', 'r', 'd'})
	}
	return testPeer(t), peers, shards
}

func testPeer(t *testing.T) peer.ID {
	t.Helper()
	_, pub, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := peer.IDFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestAdoptSpreadsAsPlaceStripe: a prior's hints are a co-writer's choice.
// Adopt must not accept a stripe whose holders are more concentrated than
// PlaceStripe would ever place it (distinct peers where there are enough):
// a co-writer naming one candidate (say a peer it runs, which answers OK to
// any RENEW) for every shard of every stripe would otherwise make the
// victim's snapshot hang on that one peer, where a STORE-placed stripe
// loses at most one shard to it.
func TestAdoptSpreadsAsPlaceStripe(t *testing.T) {
	ctx := context.Background()
	self, peers, shards := stripeFixture(t)
	r := &okRemote{renews: map[peer.ID]int{}}
	s, err := New(Deps{Self: self, Remote: r, Local: nopLocal{}, Ann: nopAnn{}, Log: slog.Default()}, peers, 3, 2, false, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Honest: five distinct candidates, as PlaceStripe places them.
	spread := [][]byte{[]byte(peers[0]), []byte(peers[1]), []byte(peers[2]), []byte(peers[3]), []byte(self)}
	if !s.Adopt(ctx, shards, spread) {
		t.Fatal("a stripe on five distinct candidates was not adopted")
	}
	// Forged: every shard on one candidate.
	one := make([][]byte, 5)
	for i := range one {
		one[i] = []byte(peers[0])
	}
	if s.Adopt(ctx, shards, one) {
		t.Fatalf("a stripe whose five shards are all on one peer was adopted (%d RENEWs to it): a co-writer's hints decide the put's redundancy", r.renews[peers[0]])
	}
	// Few peers: PlaceStripe doubles up evenly (at most 2 of 5 on each of
	// 3); so may Adopt, but no more.
	s3, err := New(Deps{Self: self, Remote: r, Local: nopLocal{}, Ann: nopAnn{}, Log: slog.Default()}, peers[:2], 3, 2, true, 0)
	if err != nil {
		t.Fatal(err)
	}
	even := [][]byte{[]byte(peers[0]), []byte(peers[1]), []byte(self), []byte(peers[0]), []byte(peers[1])}
	if !s3.Adopt(ctx, shards, even) {
		t.Fatal("a stripe spread 2-2-1 over 3 candidates was not adopted")
	}
	three := [][]byte{[]byte(peers[0]), []byte(peers[0]), []byte(peers[0]), []byte(peers[1]), []byte(self)}
	if s3.Adopt(ctx, shards, three) {
		t.Fatal("a stripe with 3 of 5 shards on one of 3 candidates was adopted")
	}
}

// failRemote fails every RENEW with err.
type failRemote struct {
	okRemote
	err error
}

func (r *failRemote) Renew(context.Context, peer.ID, cid.Cid, [32]byte, uint64) error { return r.err }

// TestAdoptExcludesSilentPeers: a holder that does not answer a RENEW
// (a transport error) is excluded from the put, as a failed STORE's peer
// is, so that the stripes placed after it do not wait for it again; one
// that answers "not found" is only a holder without that block.
func TestAdoptExcludesSilentPeers(t *testing.T) {
	ctx := context.Background()
	self, peers, shards := stripeFixture(t)
	holders := [][]byte{[]byte(peers[0]), []byte(peers[1]), []byte(peers[2]), []byte(peers[3]), []byte(self)}
	for name, tc := range map[string]struct {
		err      error
		excluded bool
	}{
		"no answer": {errors.New("stream reset"), true},
		"not found": {&shard.RemoteError{Code: shard.CodeNotFound}, false},
	} {
		t.Run(name, func(t *testing.T) {
			r := &failRemote{okRemote: okRemote{renews: map[peer.ID]int{}}, err: tc.err}
			s, err := New(Deps{Self: self, Remote: r, Local: nopLocal{}, Ann: nopAnn{}, Log: slog.Default()}, peers, 3, 2, false, 0)
			if err != nil {
				t.Fatal(err)
			}
			if s.Adopt(ctx, shards, holders) {
				t.Fatal("adopted with every RENEW failing")
			}
			if got := s.isExcluded(peers[0]); got != tc.excluded {
				t.Fatalf("peer excluded: %v, want %v", got, tc.excluded)
			}
			if s.isExcluded(self) {
				t.Fatal("this node excluded")
			}
		})
	}
}
