// Package dht will set up umbra's Kademlia DHT (go-libp2p-kad-dht with the
// /umbra protocol prefix, server mode), its record validators, and
// provide/find with closest-peer placement. It arrives with the network
// issue; nothing in the single-node core uses it.
package dht
