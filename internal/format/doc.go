// Package format holds umbra's versioned byte encodings: the manifest
// node, the block that describes a file (a root node) or a part of a large
// file's chunk table (an interior node); the folder record, a folder's
// signed pointer to its current snapshot (record.go); and the folder
// snapshot, a folder's sorted entries (snapshot.go). docs/format.md ("Manifest") is the
// specification; this is its summary.
//
// A node is one block:
//
//	+---------+------------+--------------+----------------------+--------------------+
//	| version | commitment | verifyLen u32| verify part (AEAD)   | read part (AEAD)   |
//	| 0x02    | 32 bytes   | big endian   | key Kv, aad "…verify"| key Kr, aad "…read"|
//	+---------+------------+--------------+----------------------+--------------------+
//
// The key commitment, HKDF(verify key, "umbra manifest key-commitment v2"),
// is checked before anything is decrypted: AES-GCM is not key-committing,
// and without it one block could open, as two files, under two keys.
//
// Kv = HKDF(verify key, "umbra manifest verify-part v1") and Kr = HKDF(read
// key, "umbra manifest read-part v1"); verify key = HKDF(read key, "umbra file
// verify-key v1"). A verify-capability holder can open the verify part (shard
// digests, sealed lengths, k, m, placement hints, child nodes) and so check and
// repair every shard; only a read-capability holder can open the read part
// (chunk keys, plaintext lengths, the file name). Both parts are padded with
// Padmé before sealing, so a node's size leaks little about the file's size.
//
// Nodes form a tree: level-0 entries are data chunks, level-L entries are
// nodes of level L-1. A node holds at most MaxNodePlain bytes of plaintext,
// so a file of any size is described by a tree of small blocks, built and read
// with memory bounded by the tree's depth.
package format
