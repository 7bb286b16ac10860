// Package kind gives umbra's errors a kind where they are made, and maps
// each kind, in one table, to the HTTP status the API answers and the exit
// code the CLI returns (README "Exit codes"). A sentinel is made with New
// (or an error marked with Mark) once; callers ask Of, never a list of
// sentinels.
//
// The model is pebble's MarkCorruptionError and syncthing's
// IsVersionMismatch: the kind travels with the error through %w wrapping.
package kind

import (
	"context"
	"errors"
	"net/http"
)

// Kind classifies an error for the API and the CLI.
type Kind int

// Kinds. Their names are part of the API (the "kind" of a JSON error).
const (
	Other       Kind = iota // anything else
	Usage                   // bad arguments, flags or capability
	NotFound                // data not present, or too few shards
	Corrupt                 // data or manifest failed authentication or parsing
	FewPeers                // too few peers to spread a put
	Full                    // a store's quota reached
	Busy                    // a peer or the node is at its limits; try again
	IO                      // a disk or system error
	Interrupted             // the operation was cancelled
	BrokenPipe              // the reader of the output went away
	Exists                  // a name is taken (mkdir, or put without --force)
	Conflict                // a newer version won; read again and retry
	NotDir                  // a path goes through, or names, a file where a folder is needed
	IsDir                   // a folder where a file is needed
	ReadOnly                // a change through a read capability
)

// row is how one kind shows to the outside.
type row struct {
	name   string
	status int // HTTP status of the API's answer
	exit   int // CLI exit code
}

// table is the one mapping of kinds to names, HTTP statuses and exit codes.
var table = [...]row{
	Other:       {"error", http.StatusInternalServerError, 1},
	Usage:       {"usage", http.StatusBadRequest, 2},
	NotFound:    {"not_found", http.StatusNotFound, 3},
	Corrupt:     {"corrupt", http.StatusUnprocessableEntity, 4},
	FewPeers:    {"few_peers", http.StatusConflict, 1},
	Full:        {"full", http.StatusInsufficientStorage, 1},
	Busy:        {"busy", http.StatusServiceUnavailable, 1},
	IO:          {"io", http.StatusInternalServerError, 1},
	Interrupted: {"interrupted", 499, 130}, // 499: nginx's "client closed request"
	BrokenPipe:  {"broken_pipe", 499, 141}, // 128 + SIGPIPE
	Exists:      {"exists", http.StatusConflict, 1},
	Conflict:    {"conflict", http.StatusPreconditionFailed, 1},
	NotDir:      {"not_folder", http.StatusBadRequest, 2},
	IsDir:       {"is_folder", http.StatusBadRequest, 2},
	ReadOnly:    {"read_only", http.StatusForbidden, 2},
}

func (k Kind) row() row {
	if k < 0 || int(k) >= len(table) {
		return table[Other]
	}
	return table[k]
}

// String is the kind's name in the API.
func (k Kind) String() string { return k.row().name }

// HTTPStatus is the status the API answers an error of this kind with.
func (k Kind) HTTPStatus() int { return k.row().status }

// ExitCode is the code the CLI exits with on an error of this kind.
func (k Kind) ExitCode() int { return k.row().exit }

// Parse returns the kind named name (Other for an unknown name).
func Parse(name string) Kind {
	for k, r := range table {
		if r.name == name {
			return Kind(k)
		}
	}
	return Other
}

// kinded is implemented by errors that carry a kind.
type kinded interface{ Kind() Kind }

// Of returns the kind of err: the first kind found along its chain of
// wrapped errors; context cancellation is Interrupted; nil and unmarked
// errors are Other.
func Of(err error) Kind {
	var k kinded
	switch {
	case err == nil:
		return Other
	case errors.As(err, &k):
		return k.Kind()
	case errors.Is(err, context.Canceled):
		return Interrupted
	}
	return Other
}

// sentinel is an error made with New.
type sentinel struct {
	k   Kind
	msg string
}

func (e *sentinel) Error() string { return e.msg }
func (e *sentinel) Kind() Kind    { return e.k }

// New returns a sentinel error of kind k: errors.New with a kind.
func New(k Kind, msg string) error { return &sentinel{k: k, msg: msg} }

// marked is an error given a kind by Mark.
type marked struct {
	err error
	k   Kind
}

func (e *marked) Error() string { return e.err.Error() }
func (e *marked) Unwrap() error { return e.err }
func (e *marked) Kind() Kind    { return e.k }

// Mark returns err with kind k (nil stays nil). errors.Is and errors.As see
// through it to err.
func Mark(err error, k Kind) error {
	if err == nil {
		return nil
	}
	return &marked{err: err, k: k}
}
