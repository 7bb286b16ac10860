// Package fuse mounts an umbra folder (or file) as a drive with go-fuse v2's
// fs API. It is a filesystem model over a small Store interface (folders
// listed with their entries' capabilities, files read by chunk-aligned
// ranges): it knows neither the API nor the engine, and cmd/umbra gives it
// the daemon's API or, offline, the node itself.
//
// Reads are aligned to a file's chunks (the unit umbra seals): decrypted
// chunks are kept in an LRU bounded in bytes, shared by every open file,
// and a file read sequentially has the next chunks fetched ahead. Files
// never change (a new version is a new capability), so the kernel keeps
// their pages (FOPEN_KEEP_CACHE). A folder's listing is taken afresh after
// ListTTL: changes made elsewhere show within that bound plus the kernel's
// entry and attribute timeouts (docs/architecture.md, "FUSE").
//
// Errors become errno in one function, errno: unmapped kinds are logged
// and become EIO.
package fuse
