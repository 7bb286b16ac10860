package network

import (
	"bytes"
	"context"
	"crypto/rand"
	"testing"

	blocks "github.com/ipfs/go-block-format"

	"github.com/umbra-store/umbra/blockstore"
	"github.com/umbra-store/umbra/internal/shard"
)

// TestFetchIntoCallerBuffer: a block of the caller's buffer's length is
// read into that buffer, from the local store or a peer; other lengths come
// in buffers of their own.
func TestFetchIntoCallerBuffer(t *testing.T) {
	ctx := context.Background()
	ns := newNodes(t, 2, false, 0)
	remote, local := randomBlock(t, 64<<10), randomBlock(t, 64<<10)
	if err := ns[1].store.Put(ctx, remote); err != nil {
		t.Fatal(err)
	}
	if err := ns[0].store.Put(ctx, local); err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string]blocks.Block{"peer": remote, "local store": local} {
		into := make([]byte, len(b.RawData()))
		got, err := ns[0].net.Fetch(ctx, b.Cid(), 1<<20, []byte(ns[1].id), false, into)
		if err != nil || !bytes.Equal(got, b.RawData()) || !shard.Aliases(got, into) {
			t.Fatalf("%s: %v, in the caller's buffer: %v", name, err, shard.Aliases(got, into))
		}
		other := make([]byte, len(b.RawData())-1)
		got, err = ns[0].net.Fetch(ctx, b.Cid(), 1<<20, []byte(ns[1].id), false, other)
		if err != nil || !bytes.Equal(got, b.RawData()) || shard.Aliases(got, other) {
			t.Fatalf("%s, buffer of another length: %v", name, err)
		}
	}
}

// TestForgedAnswerIntoCallerBuffer is an attack on FetchInto: a rogue
// holder answers with forged bytes, or an error frame, of exactly the
// block's length, so that they land in the reader's own buffer (whose
// capacity is a pool class size). The fetch fails, the peer is avoided,
// and the buffer is never given to the frame pool, which would hand it out
// again while the reader still decodes into it.
func TestForgedAnswerIntoCallerBuffer(t *testing.T) {
	ctx := context.Background()
	for name, answer := range map[string]func([]byte) (shard.Type, []byte){
		"forged block": func(b []byte) (shard.Type, []byte) {
			c := bytes.Clone(b)
			c[len(c)/2] ^= 1
			return shard.TypeBlock, c
		},
		"error of the block's length": func(b []byte) (shard.Type, []byte) {
			return shard.TypeError, bytes.Repeat([]byte{0x7f}, len(b))
		},
	} {
		t.Run(name, func(t *testing.T) {
			ns := newNodes(t, 2, false, 0)
			b := randomBlock(t, 64<<10)
			rogue(ns[1].h, func(shard.Frame) (shard.Type, []byte) { return answer(b.RawData()) })
			into := make([]byte, len(b.RawData())) // 64 KiB: the pool's smallest class
			if got, err := ns[0].net.Fetch(ctx, b.Cid(), 1<<20, []byte(ns[1].id), false, into); err == nil {
				t.Fatalf("forged answer returned (%d bytes)", len(got))
			}
			var held [][]byte
			for range 64 {
				buf := shard.Buffer(len(into))
				if shard.Aliases(buf, into) {
					t.Fatal("the caller's buffer went into the frame pool")
				}
				held = append(held, buf)
			}
			for _, buf := range held {
				shard.Release(buf)
			}
		})
	}
}

// randomBlock is a shard-like block: n random bytes named by BLAKE3.
func randomBlock(t *testing.T, n int) blocks.Block {
	t.Helper()
	data := make([]byte, n)
	rand.Read(data)
	b, _ := blockstore.NewBlockHash(blockstore.BLAKE3, data)
	return b
}
