package format

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"testing"

	"github.com/umbra-store/umbra/internal/seal"
	"github.com/umbra-store/umbra/keyring"
)

func key(b byte) keyring.Key {
	k, _ := keyring.KeyFromBytes(bytes.Repeat([]byte{b}, 32))
	return k
}

func leafNode() *Node {
	n := &Node{Level: 0, K: 3, M: 2, Suite: seal.SuiteAES256GCM, Peers: [][]byte{[]byte("peer-a"), []byte("peer-b")}, Name: "report.pdf"}
	for i := 0; i < 3; i++ {
		size := uint64(1000 * (i + 1))
		e := Entry{SealedLen: seal.SealedLen(int(size)), Key: key(byte(0x30 + i)), Size: size}
		for j := 0; j < 5; j++ {
			e.Shards = append(e.Shards, sha256.Sum256([]byte{byte(i), byte(j)}))
			h := uint16(NoHint)
			if j < 2 {
				h = uint16(j)
			}
			e.Hints = append(e.Hints, h)
		}
		n.Entries = append(n.Entries, e)
		n.Size += size
	}
	return n
}

func interiorNode() *Node {
	n := &Node{Level: 1, K: 3, M: 2, Suite: seal.SuiteAES256GCM}
	for i := 0; i < 2; i++ {
		ck := key(byte(0x50 + i))
		n.Entries = append(n.Entries, Entry{Child: sha256.Sum256([]byte{byte(i)}), ChildVKey: ck.Derive(keyring.VerifyKeyInfo), Key: ck, Size: 1 << 30})
		n.Size += 1 << 30
	}
	return n
}

func TestRoundTrip(t *testing.T) {
	for name, n := range map[string]*Node{"leaf": leafNode(), "interior": interiorNode(), "empty": {K: 1, Suite: 1}} {
		t.Run(name, func(t *testing.T) {
			block, err := n.Encode(key(1))
			if err != nil {
				t.Fatal(err)
			}
			got, err := Open(block, key(1))
			if err != nil {
				t.Fatal(err)
			}
			again, err := got.Encode(key(1))
			if err != nil || !bytes.Equal(again, block) {
				t.Fatalf("re-encoding differs: %v", err)
			}
			if got.Name != n.Name || got.Size != n.Size || len(got.Entries) != len(n.Entries) {
				t.Fatalf("decoded %+v", got)
			}
			v, err := OpenVerify(block, key(1).Derive(keyring.VerifyKeyInfo))
			if err != nil {
				t.Fatal(err)
			}
			for i, e := range v.Entries {
				if !e.Key.IsZero() || e.Size != 0 {
					t.Fatalf("verify-only decode of entry %d carries read-part data", i)
				}
			}
			if v.Name != "" {
				t.Fatal("verify key revealed the name")
			}
		})
	}
}

// TestKnownAnswer pins the digest of an encoded leaf node.
func TestKnownAnswer(t *testing.T) {
	block, err := leafNode().Encode(key(1))
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprintf("%d %x", len(block), sha256.Sum256(block)); got != "791 9f58a3d6f1ef946dd74ce2031f2293dcbbc364801270f8caf570183f789a9359" {
		t.Fatalf("encoding changed: %s", got)
	}
}

func TestWrongKeyAndTampering(t *testing.T) {
	block, _ := leafNode().Encode(key(1))
	if _, err := Open(block, key(2)); !errors.Is(err, ErrAuth) {
		t.Fatalf("wrong key: %v", err)
	}
	// A verify-key holder cannot open the read part.
	vk := key(1).Derive(keyring.VerifyKeyInfo)
	if _, err := Open(block, vk); !errors.Is(err, ErrAuth) {
		t.Fatalf("verify key as read key: %v", err)
	}
	for _, i := range []int{10, len(block) / 2, len(block) - 1} {
		bad := bytes.Clone(block)
		bad[i] ^= 4
		if _, err := Open(bad, key(1)); err == nil {
			t.Fatalf("flip at %d accepted", i)
		}
	}
	bad := bytes.Clone(block)
	bad[0] = 2
	if _, err := Open(bad, key(1)); !errors.Is(err, ErrVersion) {
		t.Fatalf("version 2: %v", err)
	}
}

func TestEncodeRejectsInconsistentNodes(t *testing.T) {
	n := leafNode()
	n.Entries[0].Shards = n.Entries[0].Shards[:4]
	if _, err := n.Encode(key(1)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("missing shard: %v", err)
	}
	n = leafNode()
	n.Entries[1].Hints[0] = 7
	if _, err := n.Encode(key(1)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("hint out of range: %v", err)
	}
	n = leafNode()
	n.K = 0
	if _, err := n.Encode(key(1)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("k=0: %v", err)
	}
}

// FuzzManifestDecode feeds arbitrary plaintext to the part decoders (past the
// AEAD, where a fuzzer could never reach) and arbitrary blocks to Open. What
// decodes must re-encode to the same bytes.
func FuzzManifestDecode(f *testing.F) {
	for _, n := range []*Node{leafNode(), interiorNode()} {
		vp, rp, _ := n.Plaintext()
		f.Add(vp, rp)
	}
	f.Add([]byte{1, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0}, []byte{1})
	f.Fuzz(func(t *testing.T, vp, rp []byte) {
		n, err := decodeVerify(vp)
		if err != nil {
			return
		}
		v2, err := n.verifyPlain()
		if err != nil || !bytes.Equal(v2, vp) {
			t.Fatalf("verify part does not round trip: %v", err)
		}
		if err := decodeRead(n, rp); err != nil {
			return
		}
		if !bytes.Equal(n.readPlain(), rp) {
			t.Fatal("read part does not round trip")
		}
		block, err := n.Encode(key(3))
		if err != nil {
			return
		}
		if _, err := Open(block, key(3)); err != nil {
			t.Fatalf("encoded node does not open: %v", err)
		}
		_, _ = Open(vp, key(3)) // arbitrary bytes as a block: must not panic
	})
}
