package network

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	blocks "github.com/ipfs/go-block-format"
	"github.com/libp2p/go-libp2p/core/network"

	"github.com/umbra-store/umbra/blockstore"
	"github.com/umbra-store/umbra/erasure"
	"github.com/umbra-store/umbra/internal/engine"
	"github.com/umbra-store/umbra/internal/format"
	"github.com/umbra-store/umbra/internal/seal"
	"github.com/umbra-store/umbra/internal/shard"
	"github.com/umbra-store/umbra/keyring"
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
			// Empty that class first (it holds at most 64 buffers): the pool
			// is the process's, and a class left full by an earlier test (or
			// subtest: each gives 64 back below) would drop the caller's
			// buffer if it were wrongly given back, and this test would pass.
			var held [][]byte
			for range 128 {
				held = append(held, shard.Buffer(len(into)))
			}
			defer func() {
				for _, buf := range held {
					shard.Release(buf)
				}
			}()
			if got, err := ns[0].net.Fetch(ctx, b.Cid(), 1<<20, []byte(ns[1].id), false, into); err == nil {
				t.Fatalf("forged answer returned (%d bytes)", len(got))
			}
			for range 128 {
				buf := shard.Buffer(len(into))
				if shard.Aliases(buf, into) {
					t.Fatal("the caller's buffer went into the frame pool")
				}
				held = append(held, buf)
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

// TestRogueHolderOfInPlaceShards: a get reads data shards straight into
// the chunk's buffer. Each stripe's first data shard is hinted to a rogue
// holder that answers with forged bytes of the shard's length (which land
// in that buffer), or sends a header and half a body then stalls until the
// reader gives up on it. The get goes to parity on an honest holder, the
// stalled reads are cancelled and waited for, the forged bytes are rebuilt
// over, and the file reads back right, gets running at once.
func TestRogueHolderOfInPlaceShards(t *testing.T) {
	for name, answer := range map[string]func(st network.Stream, size int){
		"forged of the shard's length": func(st network.Stream, size int) {
			_ = shard.WriteFrame(st, shard.TypeBlock, bytes.Repeat([]byte{0xbb}, size))
		},
		"half a body, then a stall": func(st network.Stream, size int) {
			hdr := []byte{shard.Version, byte(shard.TypeBlock), 0, 0, 0, 0}
			binary.BigEndian.PutUint32(hdr[2:], uint32(size))
			_, _ = st.Write(append(hdr, bytes.Repeat([]byte{0xaa}, size/2)...))
			_, _ = io.Copy(io.Discard, st) // until the reader resets the stream
		},
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			ns := newNodes(t, 2, false, 0)
			reader, honest := ns[0], ns[1]
			rogue := rogueHost(t, reader)
			const k, m = 2, 2
			plain := make([]byte, 6<<20+12345) // two stripes
			rand.Read(plain)
			ent, sizes := storeChunkOn(t, honest.store, plain, k, m)
			for i := range ent.Hints {
				ent.Hints[i] = 0 // the honest holder
				if i%(k+m) == 0 {
					ent.Hints[i] = 1 // the rogue
				}
			}
			rogueStream(rogue, func(st network.Stream, f shard.Frame) error {
				raw, _ := shard.ParseCID(f.Payload)
				answer(st, sizes[string(raw)])
				return nil
			})
			n := &format.Node{Level: 0, K: k, M: m, Suite: seal.SuiteAES256GCM, Size: ent.Size,
				Peers: [][]byte{[]byte(honest.id), []byte(rogue.ID())}, Entries: []format.Entry{ent}}
			key := keyring.GenerateKey()
			raw, err := n.Encode(key)
			if err != nil {
				t.Fatal(err)
			}
			root, d := blockstore.NewBlock(raw)
			if err := reader.store.Put(ctx, root); err != nil {
				t.Fatal(err)
			}
			e := engine.New(reader.store, keyring.Secrets{}, engine.WithNetwork(reader.net))
			errs := make(chan error, 3)
			for range 3 {
				go func() {
					var out bytes.Buffer
					err := e.Get(ctx, keyring.NewReadCap(d, key), &out)
					if err == nil && !bytes.Equal(out.Bytes(), plain) {
						err = errors.New("read back wrong")
					}
					errs <- err
				}()
			}
			for range 3 {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// storeChunkOn seals plain under a fresh key, codes it k+m into shards
// named by BLAKE3, stores them in st and returns the chunk's entry and each
// shard's size by its CID's bytes.
func storeChunkOn(t *testing.T, st *blockstore.Store, plain []byte, k, m int) (format.Entry, map[string]int) {
	t.Helper()
	coder, err := erasure.New(k, m)
	if err != nil {
		t.Fatal(err)
	}
	ck := keyring.GenerateKey()
	sealed := seal.Seal(nil, ck, plain)
	shards, err := coder.Encode(make([]byte, coder.EncodedLen(len(sealed))), sealed)
	if err != nil {
		t.Fatal(err)
	}
	ent := format.Entry{SealedLen: len(sealed), Key: ck, Size: uint64(len(plain))}
	sizes := map[string]int{}
	for _, sh := range shards {
		b, d := blockstore.NewBlockHash(blockstore.BLAKE3, bytes.Clone(sh))
		if err := st.Put(context.Background(), b); err != nil {
			t.Fatal(err)
		}
		sizes[string(b.Cid().Bytes())] = len(sh)
		ent.Shards = append(ent.Shards, d)
		ent.Hints = append(ent.Hints, format.NoHint)
	}
	return ent, sizes
}
