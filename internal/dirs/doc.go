// Package dirs is umbra's folders: mutable, encrypted directories named by
// folder capabilities (keyring's dw, dr, dv). A folder is a signed record
// (format.Record) that points to its current snapshot, an umbra file
// whose plaintext lists the folder's entries (format.Snapshot). Records
// live on the folder's holders and the DHT (the Records the daemon gives,
// network.Folders); snapshots and files are stored and read by the engine.
//
// A writer reads the newest record, applies its change to that snapshot,
// stores the new snapshot and publishes a record one higher. Holders keep
// only a record newer than theirs; a writer whose record a majority of the
// holders did not keep lost a race: it reads again (merging the versions
// that raced, against the snapshot they share as parent) and applies its
// change once more (docs/protocol.md, "Concurrent writers").
//
// Paths are NAME:a/b/c, NAME an alias of the node (a capability kept in
// the node directory), or CAP/a/b/c.
package dirs
