package retrieval

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"log/slog"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/umbra-store/umbra/blockstore"
	"github.com/umbra-store/umbra/internal/p2phost"
	"github.com/umbra-store/umbra/internal/shard"
)

// noProviders is a DHT that knows nobody.
type noProviders struct{}

func (noProviders) FindProvidersAsync(context.Context, cid.Cid, int) <-chan peer.AddrInfo {
	ch := make(chan peer.AddrInfo)
	close(ch)
	return ch
}

// TestPeerNotesBounded is finding 8b of the hardening review: hints naming
// made-up peers grew the down and bad lists without bound.
func TestPeerNotesBounded(t *testing.T) {
	ctx := context.Background()
	_, k, _ := ed25519.GenerateKey(rand.Reader)
	h, err := p2phost.New(p2phost.Options{Key: k, Listen: []string{"/ip4/127.0.0.1/tcp/0"}})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	st, err := blockstore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	f := New(h, st, shard.NewClient(h), noProviders{}, nil, slog.New(slog.DiscardHandler))
	b, _ := blockstore.NewBlock([]byte("nobody has it"))
	for i := range 3 * maxPeerNotes {
		_, pub, _ := crypto.GenerateEd25519Key(rand.Reader)
		id, _ := peer.IDFromPublicKey(pub)
		if i%256 == 0 { // through the real path: a deep fetch hinting it
			if _, err := f.Fetch(ctx, b.Cid(), 1<<20, []byte(id), true, nil); err == nil {
				t.Fatal("a made-up peer served a block")
			}
		}
		f.health.markBad(id)
		f.health.markDown(id)
	}
	f.health.mu.Lock()
	nb, nd := len(f.health.bad), len(f.health.down)
	f.health.mu.Unlock()
	if nb > maxPeerNotes || nd > maxPeerNotes || nd == 0 {
		t.Fatalf("peer lists hold %d bad, %d down; bound %d", nb, nd, maxPeerNotes)
	}
}
