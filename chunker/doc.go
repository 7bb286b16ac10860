// Package chunker cuts a byte stream into content-defined chunks with a keyed
// gear hash (FastCDC with normalised chunking, Xia et al. 2016/2020).
//
// The 256-entry gear table is derived from a 32-byte secret key with
// HKDF-SHA256, so cut points depend on the key: without it an observer of
// chunk sizes cannot confirm that a user stores a known file (restic keys its
// Rabin polynomial for the same reason). Inserting bytes into a stream moves
// only the cut points near the insertion, so an edit re-stores only the chunks
// around it.
//
// Default sizes: MinSize 256 KiB, AvgSize 1 MiB, MaxSize 4 MiB. The exact
// algorithm, which is part of the format (chunk boundaries decide convergent
// keys), is specified in docs/format.md ("Chunking").
//
// The package is CPU only: no context, no network. The caller passes the
// buffer each chunk is copied into.
package chunker
