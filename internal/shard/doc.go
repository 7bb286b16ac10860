// Package shard is umbra's shard protocol, /umbra/shard/1.0.0: the frames
// (frame.go), one file per message kind (STORE, FETCH, HAS, SYNC and their
// answers, ERROR), the server that answers them from a node's block store,
// the client that sends them over pooled streams, the buffer pool both use
// and the memory budget the server holds peers to. docs/protocol.md
// ("Shard protocol") is the specification; this is its summary.
//
// Every frame:
//
//	+---------+------+------------+-----------------+
//	| version | type | length u32 | payload         |
//	| 0x01    | u8   | big endian | length bytes    |
//	+---------+------+------------+-----------------+
//
// The length is capped at MaxPayload; a decoder refuses a larger frame
// before reading its payload, so a peer cannot make another allocate more
// than one shard's worth of memory per stream. Requests and responses share
// the header; responses come back in request order.
//
// Trust boundary: everything a peer sends is checked here before use —
// frame header, payload layout, CID form, block size, block hash — and held
// to the server's budget; an ERROR's text is made printable. What a FETCH
// returns is not trusted: the client hands back bytes the caller must hash
// against the CID it asked for (internal/retrieval does).
package shard
