package main

import (
	"errors"
	"io/fs"
	"strings"

	"github.com/umbra-store/umbra/erasure"
	"github.com/umbra-store/umbra/internal/api"
	"github.com/umbra-store/umbra/internal/engine"
	"github.com/umbra-store/umbra/internal/kind"
	"github.com/umbra-store/umbra/internal/node"
	"github.com/umbra-store/umbra/keyring"
)

// usageError marks errors in how the command was called.
type usageError struct{ err error }

func (u usageError) Error() string   { return u.err.Error() }
func (u usageError) Unwrap() error   { return u.err }
func (u usageError) Kind() kind.Kind { return kind.Usage }

// describe turns an error into one line a person can act on, and the exit
// code of its kind (internal/kind's table, README "Exit codes"). Package
// prefixes stay where they name the part that failed.
func describe(err error) (string, int) {
	code := kind.Of(err).ExitCode()
	var ue usageError
	var pe *fs.PathError
	var se *erasure.StripeError
	switch {
	case kind.Of(err) == kind.Interrupted:
		return "interrupted", code
	case errors.Is(err, api.ErrNoDaemon):
		return strings.TrimPrefix(err.Error(), "api: ") + ": start one with 'umbra daemon' (or 'umbra testnet up'), or use --offline for the local store alone", code
	case errors.As(err, &ue):
		return ue.Error() + " (see --help)", code
	case errors.Is(err, keyring.ErrChecksum):
		return "that capability is mistyped or cut short: its checksum does not match", code
	case errors.Is(err, node.ErrLocked):
		return strings.TrimPrefix(err.Error(), "node: ") + "; stop it or use another --path", code
	case errors.As(err, &se):
		return "the file cannot be rebuilt: " + strings.TrimPrefix(err.Error(), "engine: ") + " (run on a node that holds its shards)", code
	case errors.Is(err, engine.ErrNotFound) || (kind.Of(err) == kind.NotFound && strings.Contains(err.Error(), "file not found")):
		return "no such file on this node or its peers (is the capability for another network?)", code
	case kind.Of(err) == kind.Corrupt:
		return "data failed authentication: the capability does not match the stored data, or the data is corrupt (" + err.Error() + ")", code
	case errors.As(err, &pe):
		return pe.Op + " " + pe.Path + ": " + pe.Err.Error(), code
	}
	msg := err.Error()
	for _, prefix := range []string{"keyring: ", "erasure: ", "node: "} {
		msg = strings.TrimPrefix(msg, prefix)
	}
	return msg, code
}
