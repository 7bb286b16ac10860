// Package retrieval finds a block and returns its bytes, checked against
// its CID: from this node's store, then the peer the manifest hints at,
// then (a deep fetch) DHT providers, then bitswap as the last resort. It
// keeps the node's view of peer health: peers that served bad bytes are
// avoided for a while, unreachable ones skipped. docs/protocol.md
// ("Retrieval") specifies the order and the timings.
//
// Trust boundary: every source's bytes — the local store's included — are
// hashed against the CID before they are returned; nothing a peer sends is
// passed on unchecked.
package retrieval
