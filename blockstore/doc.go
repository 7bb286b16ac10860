// Package blockstore keeps content-addressed blocks on disk in Pebble v2 and
// implements boxo's blockstore.Blockstore.
//
// Every block is checked against its CID before it is written (Put refuses a
// block whose bytes do not hash to its multihash) and, when asked
// (WithVerifyOnRead), again when read, so a corrupted block is an error, never
// data. Blocks are keyed by multihash, so a CID's codec does not matter.
//
// Durability: Put and PutMany return once the write is synced to disk.
// PutManyDeferred returns once the write is in Pebble's WAL and becomes
// durable at the next Sync; callers that write many blocks (the put engine)
// use it and Sync once, before they acknowledge anything. Pebble checksums its
// WAL, so after a crash (kill -9) every synced block is served and a torn
// write is dropped, never served.
//
// Shard values are large (hundreds of KiB), so value separation is on: values
// of 1 KiB and more live in blob files and compactions move only keys. Shards
// are ciphertext, so compression is off.
//
// Key layout (part of the node's on-disk format, docs/format.md "Blockstore"):
//
//	"b" ‖ multihash  →  block bytes
package blockstore
