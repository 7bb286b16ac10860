package engine

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"io"
	"testing"

	"github.com/klauspost/reedsolomon"

	"github.com/umbra-store/umbra/internal/randstream"
)

const benchSize = 1 << 30 // bytes: a 1 GiB random file

// BenchmarkLocalPut1GiB stores a 1 GiB random stream in a fresh Pebble store
// (3+2), until every block is synced.
func BenchmarkLocalPut1GiB(b *testing.B) {
	if testing.Short() {
		b.Skip("1 GiB benchmark skipped in -short")
	}
	b.SetBytes(benchSize)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		e := New(openStore(b), testSecrets(1))
		r := randstream.New(byte(i), benchSize)
		b.StartTimer()
		if _, err := e.Put(context.Background(), r, PutOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLocalGet1GiB reads a 1 GiB file back from a Pebble store.
func BenchmarkLocalGet1GiB(b *testing.B) {
	if testing.Short() {
		b.Skip("1 GiB benchmark skipped in -short")
	}
	e := New(openStore(b), testSecrets(1))
	res, err := e.Put(context.Background(), randstream.New(1, benchSize), PutOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(benchSize)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := e.Get(context.Background(), res.Cap, io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}

// The hardware references printed beside put/get by make bench: one core.

func BenchmarkRawAES256GCM1M(b *testing.B) {
	blk, _ := aes.NewCipher(make([]byte, 32))
	g, _ := cipher.NewGCM(blk)
	buf := make([]byte, 1<<20, 1<<20+16)
	nonce := make([]byte, 12)
	b.SetBytes(int64(len(buf)))
	for i := 0; i < b.N; i++ {
		g.Seal(buf[:0], nonce, buf, nil)
	}
}

func BenchmarkRawSHA256_1M(b *testing.B) {
	buf := make([]byte, 1<<20)
	b.SetBytes(int64(len(buf)))
	for i := 0; i < b.N; i++ {
		sha256.Sum256(buf)
	}
}

func BenchmarkRawRSEncode3x2x1M(b *testing.B) {
	enc, _ := reedsolomon.New(3, 2)
	shards := make([][]byte, 5)
	for i := range shards {
		shards[i] = make([]byte, (1<<20)/3+1)
	}
	b.SetBytes(1 << 20)
	for i := 0; i < b.N; i++ {
		if err := enc.Encode(shards); err != nil {
			b.Fatal(err)
		}
	}
}
