// Package seal pads and encrypts one chunk: Padmé padding, then
// AES-256-GCM under the chunk's own key with a fixed all-zero nonce.
//
// A fixed nonce is safe because a key seals exactly one message: convergent
// keys are derived from the chunk's own hash (the same key only ever seals the
// same plaintext, which yields the same ciphertext), random keys are drawn
// fresh per chunk. The layout is in docs/format.md ("Sealed chunk"):
//
//	+-------+-------------------------------------------+---------+
//	| suite | AES-256-GCM(key, nonce=0, aad=suite, pad)  | tag(16) |
//	+-------+-------------------------------------------+---------+
//	pad = plaintext ‖ 0x80 ‖ 0x00…  to Padmé(len(plaintext)+1) bytes
package seal
