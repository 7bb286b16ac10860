// Package engine turns a byte stream into encrypted, erasure-coded,
// content-addressed shards and back: Put, Get, ReadRange, Stat.
//
// Put: chunker → per-chunk key (convergent or random) → seal (Padmé +
// AES-256-GCM) → erasure (k+m shards) → shard blocks (CIDv1, raw, SHA-256)
// → block store; the chunk entries are gathered into a manifest tree
// (internal/format) whose root block's digest and read key form the file's
// read capability. Chunks go through a pool of workers, at most Window chunks
// in flight, so memory is bounded whatever the file size. Nothing is
// acknowledged before the store has synced every block.
//
// Get walks the manifest tree in order, fetches each chunk's k data shards
// (systematic code: no decode when they all come), falls back to parity for a
// missing shard, and authenticates the chunk with AES-GCM. A chunk that fails
// authentication has its shards hash-checked: corrupted shards are dropped,
// the chunk is rebuilt from the rest, and the corrected shards are written
// back (repair on read). A shard the store refuses as corrupt (pack CRC) is
// rebuilt and rewritten the same way. ReadRange fetches only the chunks that
// cover the range: a chunk is one authenticated message, so it is fetched
// whole.
package engine
