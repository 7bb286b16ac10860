package p2phost

import (
	"context"
	"io"
	"testing"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// BenchmarkRawStreamTCP1GiB moves 1 GiB over one libp2p stream between two
// hosts on 127.0.0.1 over TCP: the ceiling for the shard protocol here.
func BenchmarkRawStreamTCP1GiB(b *testing.B) {
	const size = 1 << 30
	h1, h2 := twoHosts(b)
	done := make(chan int64, 1)
	h2.SetStreamHandler("/umbra/bench/1", func(s network.Stream) {
		n, _ := io.Copy(io.Discard, s)
		s.Close()
		done <- n
	})
	ctx := context.Background()
	if err := h1.Connect(ctx, peer.AddrInfo{ID: h2.ID(), Addrs: h2.Addrs()}); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	b.SetBytes(size)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s, err := h1.NewStream(ctx, h2.ID(), "/umbra/bench/1")
		if err != nil {
			b.Fatal(err)
		}
		for n := 0; n < size; n += len(buf) {
			if _, err := s.Write(buf); err != nil {
				b.Fatal(err)
			}
		}
		s.CloseWrite()
		if got := <-done; got != size {
			b.Fatalf("received %d bytes", got)
		}
		s.Close()
	}
}
