// Package api is the daemon's HTTP API on a unix socket in the node
// directory (mode 0600), and the client the CLI uses. Uploads and downloads
// stream; errors come back as JSON with a kind the CLI maps to an exit code.
//
//	POST /v1/put?shards=K%2BM&random-key=1&name=N&allow-fewer-peers=1   body: the file
//	GET  /v1/get      header Umbra-Capability; body: the file; trailer Umbra-Error
//	GET  /v1/stat     header Umbra-Capability
//	GET  /v1/status
//	GET  /v1/peers
//
// A put or get may instead hand the daemon the file descriptor to read or
// write (Upgrade: umbra-fd/1, see FDUpgrade and docs/protocol.md).
package api

import (
	"errors"

	"github.com/umbra-store/umbra/erasure"
	"github.com/umbra-store/umbra/internal/engine"
	"github.com/umbra-store/umbra/internal/format"
	"github.com/umbra-store/umbra/internal/seal"
	"github.com/umbra-store/umbra/keyring"
)

// SocketName is the API socket's name inside the node directory.
const SocketName = "api.sock"

// Header names.
const (
	CapHeader   = "Umbra-Capability"
	ErrorHeader = "Umbra-Error"
)

// Error kinds, carried in JSON errors; the CLI turns them into exit codes.
const (
	KindUsage    = "usage"
	KindNotFound = "not_found"
	KindCorrupt  = "corrupt"
	KindFewPeers = "few_peers"
	KindError    = "error"
	// KindBrokenPipe: the reader of a get's output went away (a pipe into
	// head, say). The CLI ends quietly, as on SIGPIPE.
	KindBrokenPipe = "broken_pipe"
)

// PutResult is the answer to a put.
type PutResult struct {
	Cap      string   `json:"cap"`
	Size     uint64   `json:"size"`
	Chunks   int      `json:"chunks"`
	Warnings []string `json:"warnings,omitempty"`
}

// Stat describes a file.
type Stat struct {
	Size uint64 `json:"size"`
	Name string `json:"name"`
	K    int    `json:"k"`
	M    int    `json:"m"`
}

// Status describes the node.
type Status struct {
	PeerID       string   `json:"peer_id"`
	Addrs        []string `json:"addrs"`
	StorageUsed  int64    `json:"storage_used"`
	StorageQuota int64    `json:"storage_quota"`
	Blocks       int      `json:"blocks"`
	Peers        int      `json:"peers"`
	PID          int      `json:"pid"`
}

// Peer is one connected peer.
type Peer struct {
	ID        string   `json:"id"`
	Addrs     []string `json:"addrs"`
	LatencyMS float64  `json:"latency_ms"`
}

// ErrorBody is the JSON of an error answer.
type ErrorBody struct {
	Error string `json:"error"`
	Kind  string `json:"kind"`
}

// Error is an error answered by the daemon.
type Error struct {
	Kind string
	Msg  string
}

func (e *Error) Error() string { return e.Msg }

// KindOf classifies an engine or network error.
func KindOf(err error, fewPeers error) string {
	var se *erasure.StripeError
	switch {
	case errors.Is(err, erasure.ErrParams), errors.Is(err, keyring.ErrMalformed), errors.Is(err, keyring.ErrChecksum),
		errors.Is(err, keyring.ErrTruncated), errors.Is(err, keyring.ErrUnknownKind), errors.Is(err, keyring.ErrVersion),
		errors.Is(err, keyring.ErrWrongKind), errors.Is(err, engine.ErrRange):
		return KindUsage
	case errors.As(err, &se), errors.Is(err, engine.ErrNotFound):
		return KindNotFound
	case errors.Is(err, format.ErrAuth), errors.Is(err, format.ErrMalformed), errors.Is(err, format.ErrVersion),
		errors.Is(err, seal.ErrAuth), errors.Is(err, engine.ErrCorrupt):
		return KindCorrupt
	case fewPeers != nil && errors.Is(err, fewPeers):
		return KindFewPeers
	}
	return KindError
}
