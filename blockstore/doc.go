// Package blockstore keeps content-addressed blocks on disk in Pebble v2 and
// implements boxo's blockstore.Blockstore.
//
// Only umbra's CID forms are stored (CIDv1, raw, sha2-256 or blake3 with a
// full 32-byte digest: CheckCID). Every block is checked against its CID
// before it is written (Put refuses a block whose bytes do not hash to its
// multihash), a held block whose copy is intact is never written again,
// and packed values are checked against their CRC-32C when read, so a
// corrupted block is an error, never data. Readers that use a block hash it against its CID
// themselves (internal/retrieval, internal/engine) and read it with
// GetIntoUnchecked, which skips the CRC their hash makes redundant.
//
// Quota (WithQuota): every write path goes through the store, and each new
// block is charged Charge (its bytes and BlockOverhead) before it is
// written; a write past the cap fails with ErrFull.
//
// Durability: Put and PutMany return once the write is synced to disk.
// PutManyDeferred returns once the write is in Pebble's WAL and becomes
// durable at the next Sync; callers that write many blocks (the put engine)
// use it and Sync once, before they acknowledge anything. Pebble checksums its
// WAL, so after a crash (kill -9) every synced block is served and a torn
// write is dropped, never served.
//
// Large values (64 KiB and more: shards) live in append-only pack files and
// Pebble holds the index; smaller ones (manifest nodes) live in Pebble, with
// value separation on. Measured on the 2-core reference machine: Pebble's own
// write path took 150–220 MB/s of shard bytes (memtable copies, flushes, WAL),
// pack files with a Pebble index ~550 MB/s in the same benchmark. Storing a
// block that is already present writes nothing. Blocks carry leases
// (lease.go); GC deletes those whose leases all expired, and Compact
// rewrites the packs they leave mostly dead (compact.go).
//
// On-disk layout (docs/format.md "Blockstore"):
//
//	index/   Pebble: "b" ‖ multihash → 0x00 ‖ bytes            (inline)
//	                                 → 0x01 ‖ pack ‖ off ‖ len ‖ crc32c
//	packs/   NNNNNNNN.pack: "UMBRAPK" 0x01, then dataLen ‖ mhLen ‖ mh ‖ data …
//
// Durability order on Sync: pack data (fdatasync), the packs directory, then
// Pebble's WAL. Reads check the CRC-32C of packed values and refuse a value
// that fails it with ErrHashMismatch.
package blockstore
