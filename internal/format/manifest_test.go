package format

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
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
	if got := fmt.Sprintf("%d %x", len(block), sha256.Sum256(block)); got != "823 c625939b3342b212395a7f5f075b235fa14a2eba852af9f2b6aacde3b3fadb23" {
		t.Fatalf("encoding changed: %s", got)
	}
	// The header: version 3 (BLAKE3 shard digests), then the key
	// commitment of key(1) (recomputed in Python with hmac/hashlib when
	// docs/format.md was written).
	const commit = "458f796dadc654589d9f6e8917a33f72ac699d9e2f223d4359d3540aca07eec7"
	if got := fmt.Sprintf("%02x %x", block[0], block[1:33]); got != "03 "+commit {
		t.Fatalf("header: %s", got)
	}
	// The same node with SHA-256 shard digests is version 2, byte for
	// byte the block umbra wrote before version 3 (its digest pinned
	// then).
	n2 := leafNode()
	n2.ShardHash = ShardSHA256
	block2, err := n2.Encode(key(1))
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprintf("%d %x", len(block2), sha256.Sum256(block2)); got != "823 c7e2318378e29540ab74ce9fb99bf6a9e7d2cb3c594d7f9c70efad7de481dc15" {
		t.Fatalf("version 2 encoding changed: %s", got)
	}
	if !bytes.Equal(block2[1:], block[1:]) {
		t.Fatal("versions 2 and 3 differ beyond the version byte")
	}
	for _, c := range []struct {
		block []byte
		want  uint64
	}{{block, ShardBLAKE3}, {block2, ShardSHA256}} {
		n, err := Open(c.block, key(1))
		if err != nil || n.ShardHash != c.want {
			t.Fatalf("version %d opens with shard hash %v: %v", c.block[0], n, err)
		}
	}
	c := Commitment(key(0x22).Derive(keyring.VerifyKeyInfo))
	if got := fmt.Sprintf("%x", c); got != "e4cb69ba921e8c2e24966bb86cba3d39cb366878c4221176eae9bc996a550e39" {
		t.Fatalf("commitment of key 0x22…: %s", got)
	}
}

// TestKeyCommitment: a node block opens under exactly one key. Another key
// is refused by the commitment before any part is decrypted, a commitment
// rewritten for another key leaves the parts unopenable under either, and
// the retired version 1 (no commitment) is refused outright: one root
// digest cannot open as two files under two capabilities.
func TestKeyCommitment(t *testing.T) {
	block, _ := leafNode().Encode(key(1))
	for name, k := range map[string]keyring.Key{"other read key": key(2), "verify key as read key": key(1).Derive(keyring.VerifyKeyInfo)} {
		if _, err := Open(block, k); !errors.Is(err, ErrCommitment) || !errors.Is(err, ErrAuth) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := OpenVerify(block, key(2).Derive(keyring.VerifyKeyInfo)); !errors.Is(err, ErrCommitment) {
		t.Errorf("other verify key: %v", err)
	}
	swapped := bytes.Clone(block)
	c := Commitment(key(2).Derive(keyring.VerifyKeyInfo))
	copy(swapped[1:], c[:])
	if _, err := Open(swapped, key(1)); !errors.Is(err, ErrCommitment) {
		t.Errorf("swapped commitment, original key: %v", err)
	}
	if _, err := Open(swapped, key(2)); !errors.Is(err, ErrAuth) || errors.Is(err, ErrCommitment) {
		t.Errorf("swapped commitment, its key: %v", err)
	}
	v1 := bytes.Clone(block)
	v1[0] = 1
	if _, err := Open(v1, key(1)); !errors.Is(err, ErrVersion) || !strings.Contains(err.Error(), "retired") {
		t.Errorf("version 1: %v", err)
	}
}

// TestZeroSizeEntriesRefused is finding 6 of the hardening review: a crafted
// manifest of zero-size entries, nodes reused a thousand times at each
// level, made a 2-byte file's walk endless. No entry may be empty.
func TestZeroSizeEntriesRefused(t *testing.T) {
	leaf := leafNode()
	leaf.Entries[1].Size, leaf.Entries[1].SealedLen = 0, seal.SealedLen(0)
	leaf.Size -= 2000
	vp, _, err := leaf.Plaintext()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := decodeVerify(vp); !errors.Is(err, ErrMalformed) {
		t.Fatalf("empty chunk in the verify part: %v", err)
	}
	in := interiorNode()
	in.Entries = append(in.Entries, Entry{Child: sha256.Sum256([]byte("x")), ChildVKey: key(9), Key: key(8), Size: 0})
	vp, rp, err := in.Plaintext()
	if err != nil {
		t.Fatal(err)
	}
	n, err := decodeVerify(vp)
	if err != nil {
		t.Fatal(err)
	}
	if err := decodeRead(n, rp); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "empty") {
		t.Fatalf("empty child: %v", err)
	}
	// The empty file: a root without entries, size 0.
	empty, err := (&Node{K: 3, M: 2, Suite: seal.SuiteAES256GCM}).Encode(key(4))
	if err != nil {
		t.Fatal(err)
	}
	if n, err := Open(empty, key(4)); err != nil || n.Size != 0 {
		t.Fatalf("empty file: %v", err)
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
	for _, v := range []byte{0, 1, 4, 0xff} {
		bad := bytes.Clone(block)
		bad[0] = v
		if _, err := Open(bad, key(1)); !errors.Is(err, ErrVersion) {
			t.Fatalf("version %d: %v", v, err)
		}
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
	// Whole blocks under key(3), both versions, for the block-level Open
	// below.
	for _, n := range []*Node{leafNode(), interiorNode()} {
		b, _ := n.Encode(key(3))
		f.Add(b, []byte{})
		n.ShardHash = ShardSHA256
		b, _ = n.Encode(key(3))
		f.Add(b, []byte{})
	}
	f.Fuzz(func(t *testing.T, vp, rp []byte) {
		// Arbitrary bytes as a block: must not panic, and a block that
		// opens re-encodes to itself, its version (shard hash) included.
		if m, err := Open(vp, key(3)); err == nil {
			if again, err := m.Encode(key(3)); err != nil || !bytes.Equal(again, vp) {
				t.Fatalf("opened block does not re-encode to itself: %v", err)
			}
		}
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

	})
}
