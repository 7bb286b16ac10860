package placement

import (
	"context"
	"errors"
	"testing"
	"time"

	blocks "github.com/ipfs/go-block-format"

	"github.com/umbra-store/umbra/internal/kind"
)

// TestExpiredDuringPut: once a put's own expiry has passed, its session
// stores nothing more and says why (peers would refuse the lease as
// malformed).
func TestExpiredDuringPut(t *testing.T) {
	s, err := New(Deps{Self: "self"}, nil, 1, 0, true, uint64(time.Now().Add(-time.Second).Unix()))
	if err != nil {
		t.Fatal(err)
	}
	b := blocks.NewBlock([]byte("shard"))
	if _, err := s.PlaceStripe(context.Background(), []blocks.Block{b}); !errors.Is(err, ErrExpiredDuringPut) || kind.Of(err) != kind.Usage {
		t.Fatalf("place: %v", err)
	}
	if err := s.Replicate(context.Background(), b); !errors.Is(err, ErrExpiredDuringPut) {
		t.Fatalf("replicate: %v", err)
	}
}
