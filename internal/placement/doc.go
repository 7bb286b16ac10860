// Package placement places the blocks of one put on peers: each stripe's
// k+m shards on distinct peers closest by XOR to the shard's CID (dht.Rank),
// skipping peers that refuse, are full or fail; every manifest node on this
// node and every other candidate; and durability points that SYNC every
// holder. It records which peer took each shard, for the manifest's hints.
// docs/protocol.md ("Placement", "Durability") specifies the rules.
package placement
