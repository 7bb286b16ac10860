// Package erasure stripes one sealed chunk into k data and m parity shards
// with Reed-Solomon (klauspost/reedsolomon, classic in-memory API: the
// streaming API measured under 1 GB/s here) and rebuilds it from any k.
//
// A chunk larger than k×MaxShardSize bytes is cut into several stripes of at
// most k×MaxShardSize bytes each; shards stay at or under MaxShardSize (2 MiB)
// because bitswap drops blocks near its 4 MiB message cap. The stripe layout
// is a function of the chunk length and k alone (see Layout), so the manifest
// stores only the length. The code is systematic: when all k data shards of a
// stripe arrive, no decoding is needed. Specified in docs/format.md
// ("Stripes and shards"). CPU only: no context, no network.
package erasure
