package keyring

import (
	"bytes"
	"encoding/hex"
	"testing"
)

// TestRenewSecretVectors pins the lease key and renew secret derivation
// (docs/format.md "Leases"; recomputed in Python with hmac/hashlib): one
// block stored by one owner on two peers carries unrelated lease hashes.
func TestRenewSecretVectors(t *testing.T) {
	var master Key
	copy(master.b[:], bytes.Repeat([]byte{0x11}, 32))
	kl := NewSecrets(master).LeaseKey()
	if got := hex.EncodeToString(kl.b[:]); got != "868e2c6ac9a771f00d74b8fa05a5667325dd2fa24b3372e0a0bf671afa91daa4" {
		t.Fatalf("lease key %s", got)
	}
	block := append([]byte{0x12, 0x20}, bytes.Repeat([]byte{0xab}, 32)...)
	peerA := append([]byte{0x00, 0x24, 0x08, 0x01, 0x12, 0x20}, bytes.Repeat([]byte{0xcd}, 32)...)
	peerB := append([]byte{0x00, 0x24, 0x08, 0x01, 0x12, 0x20}, bytes.Repeat([]byte{0xce}, 32)...)
	for _, v := range []struct {
		peer         []byte
		secret, hash string
	}{
		{peerA, "2255a4b414c50da485511d31e1cf2ce733a36e5af96a0886b4fc5402f5077f33", "5ef8c72fef82b5b18b792f1a6a4957c8d1947dca904ff993d70029cee09c0938"},
		{peerB, "b754537b1f2c136458e81f67563dfce37d1dc282173c0cbb742f1c80a60bd812", "170b82691e13caf2142f335384b2a7c722e3a0fabe84b2c4384df2ab04d1b39b"},
	} {
		s := RenewSecret(kl, block, v.peer)
		h := RenewHash(s)
		if hex.EncodeToString(s[:]) != v.secret || hex.EncodeToString(h[:]) != v.hash {
			t.Fatalf("renew secret %x hash %x", s, h)
		}
	}
}
