// Package dht is umbra's Kademlia DHT: go-libp2p-kad-dht with the /umbra
// protocol prefix in server mode, its records and provider records kept in a
// datastore the node hands it (the node's Pebble database), a place to
// register namespaced record validators, the queue through which a node
// announces the blocks it holds, and the XOR ranking of peers for a block.
//
// It knows CIDs and peers, nothing of files, keys or how blocks are stored:
// the node tells it what it stored (Announce) and how to list everything it
// holds (for the periodic re-announce). docs/protocol.md ("Announcing and
// the DHT", "Placement") specifies the behaviour.
package dht
