// Package api is the daemon's HTTP API on a unix socket in the node
// directory (mode 0600), and the client the CLI uses. Uploads and downloads
// stream; errors come back as JSON with their kind (internal/kind), which
// the CLI maps to an exit code.
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
	"github.com/umbra-store/umbra/internal/dirs"
	"github.com/umbra-store/umbra/internal/kind"
	"github.com/umbra-store/umbra/internal/xfer"
)

// SocketName is the API socket's name inside the node directory.
const SocketName = "api.sock"

// Header names.
const (
	CapHeader   = "Umbra-Capability"
	ErrorHeader = "Umbra-Error"
	// PathHeader and ToHeader carry folder paths (ALIAS:a/b or CAP/a/b):
	// in headers, not the URL, as a path may hold a capability.
	PathHeader = "Umbra-Path"
	ToHeader   = "Umbra-To"
)

// PutResult is the answer to a put.
type PutResult struct {
	Cap string `json:"cap,omitempty"` // a file put by itself
	// Entry is the folder entry of a file put into a folder.
	Entry    *dirs.Entry `json:"entry,omitempty"`
	Size     uint64      `json:"size"`
	Chunks   int         `json:"chunks"`
	Warnings []string    `json:"warnings,omitempty"`
	// Stats count where the put's shards and bytes went.
	Stats *xfer.Report `json:"stats,omitempty"`
}

// GetResult is the answer to a get of a file handed over: where its
// shards and bytes came from.
type GetResult struct {
	Stats xfer.Report `json:"stats"`
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
	// Announcing is how many blocks wait to be announced on the DHT, or
	// are being announced (after a put, until the queue drains).
	Announcing int `json:"announcing"`
	// Maintenance is the last maintenance run (nil: none yet).
	Maintenance *MaintStatus `json:"maintenance,omitempty"`
	// Transfers sum the counters of every put and get since the daemon
	// started (a mount's reads and writes included).
	Transfers xfer.Report `json:"transfers"`
}

// MaintStatus sums up one maintenance run over the files a node
// maintains.
type MaintStatus struct {
	At       int64    `json:"at"`   // unix seconds, when it ended
	Took     float64  `json:"took"` // seconds
	Files    int      `json:"files"`
	Healthy  int      `json:"healthy"`
	Degraded int      `json:"degraded"` // after the run's repairs
	Lost     int      `json:"lost"`
	Failed   int      `json:"failed"` // could not be walked (manifest gone, …)
	Repaired int      `json:"repaired"`
	Renewed  int      `json:"renewed"`
	Problems []string `json:"problems,omitempty"` // "STATUS CAP-PREFIX…" of each file not healthy
}

// Peer is one connected peer.
type Peer struct {
	ID        string   `json:"id"`
	Addrs     []string `json:"addrs"`
	LatencyMS float64  `json:"latency_ms"`
}

// ErrorBody is the JSON of an error answer: the message and the name of
// its kind (internal/kind).
type ErrorBody struct {
	Error string `json:"error"`
	Kind  string `json:"kind"`
}

// Error is an error answered by the daemon, with the kind it had there.
type Error struct {
	kind kind.Kind
	Msg  string
}

// newError makes the client's error from a kind's name and a message.
func newError(kindName, msg string) *Error { return &Error{kind: kind.Parse(kindName), Msg: msg} }

func (e *Error) Error() string { return e.Msg }

// Kind is the error's kind on the daemon's side.
func (e *Error) Kind() kind.Kind { return e.kind }

// body makes the JSON of an error answer.
func body(err error) ErrorBody { return ErrorBody{Error: err.Error(), Kind: kind.Of(err).String()} }
