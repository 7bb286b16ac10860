// Package engine turns a byte stream into encrypted, erasure-coded,
// content-addressed shards and back: Put, Get, ReadRange, Stat.
//
// Put: chunker → per-chunk key (convergent or random) → seal (Padmé +
// AES-256-GCM) → erasure (k+m shards) → shard blocks (CIDv1, raw, BLAKE3)
// → block store; the chunk entries are gathered into a manifest tree
// (internal/format) whose root block's digest and read key form the file's
// read capability. Chunks go through a pool of workers, at most 2 × workers
// chunks in flight, so memory is bounded whatever the file size. Nothing is
// acknowledged before the store has synced every block.
//
// Get walks the manifest tree in order (within a budget of nodes and chunks
// set by the file's size), fetches each chunk's k data shards (systematic
// code: no decode when they all come), and falls back to parity for a shard
// that is missing, fails its digest or has the wrong length: every block is
// checked against the digest its authenticated parent names before it is
// used (a Network does it for what it fetches, the engine for its own
// store), because AES-GCM is not key-committing and a key holder could
// forge a chunk that passes its tag. The chunk is then opened with AES-GCM.
// A shard the local store refused (pack CRC or digest) is rebuilt and
// written back (repair on read). ReadRange fetches only the chunks that
// cover the range: a chunk is one authenticated message, so it is fetched
// whole.
package engine
