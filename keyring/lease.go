package keyring

import "crypto/sha256"

// LeaseKey keys the user's renew secrets: Kl = HKDF(S, "umbra lease v1").
func (s Secrets) LeaseKey() Key { return s.master.Derive("umbra lease v1") }

// renewLabel is the renew secret's HMAC label (14 bytes).
const renewLabel = "umbra renew v1"

// RenewSecret is the secret of the lease this user holds on the block with
// multihash block at the storage peer with ID peer (its bytes):
// HMAC(Kl, "umbra renew v1" ‖ block ‖ peer). One per block and per peer,
// so peers comparing their leases cannot tell that two blocks, or two
// files, have one owner; only the storer can renew or cancel it.
func RenewSecret(leaseKey Key, block, peer []byte) [32]byte {
	k := leaseKey.MAC([]byte(renewLabel), block, peer)
	return k.b
}

// RenewHash is what a storage peer keeps of a renew secret: its SHA-256.
func RenewHash(secret [32]byte) [32]byte { return sha256.Sum256(secret[:]) }
