package engine

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/reedsolomon"

	"github.com/umbra-store/umbra/blockstore"
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

// BenchmarkRawBLAKE3_1M is the hash of shard CIDs and convergent keys
// (manifest version 0x03).
func BenchmarkRawBLAKE3_1M(b *testing.B) {
	buf := make([]byte, 1<<20)
	b.SetBytes(int64(len(buf)))
	for i := 0; i < b.N; i++ {
		blockstore.BLAKE3.Sum(buf)
	}
}

// BenchmarkRawPageCacheWrite1GiB writes 1 GiB into a new file, 1 MiB at a
// time, without a sync: the kernel's copy into the page cache that every
// pack write pays. On a VM whose free memory the host reclaims it includes
// the faults that give the guest its pages back, and varies run to run.
func BenchmarkRawPageCacheWrite1GiB(b *testing.B) {
	writeGiB(b, make([]byte, 1<<20), false)
}

// writeGiB writes 1 GiB of buf into a new file each round, synced if sync;
// the file is removed untimed (the next round writes fresh pages).
func writeGiB(b *testing.B, buf []byte, sync bool) {
	for i := 0; i < b.N; i++ {
		f, err := os.Create(filepath.Join(b.TempDir(), "w"))
		if err != nil {
			b.Fatal(err)
		}
		for n := 0; n < 1<<30; n += len(buf) {
			if _, err := f.Write(buf); err != nil {
				b.Fatal(err)
			}
		}
		if sync {
			if err := f.Sync(); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		f.Close()
		os.Remove(f.Name())
		b.StartTimer()
	}
	b.SetBytes(1 << 30)
}

// BenchmarkRawDiskWrite1GiB writes 1 GiB of random bytes into a new file
// on the file system the stores use, 1 MiB at a time, and syncs it
// (fdatasync): what the disk takes. A put until durable writes 5/3 of its
// file at 3+2 (all of it on one node offline; over all five on the
// loopback testnet, which shares this disk) and syncs it, so the disk alone
// caps it at 3/5 of this figure.
func BenchmarkRawDiskWrite1GiB(b *testing.B) {
	buf := make([]byte, 1<<20)
	if _, err := io.ReadFull(randstream.New(7, int64(len(buf))), buf); err != nil {
		b.Fatal(err)
	}
	writeGiB(b, buf, true)
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
