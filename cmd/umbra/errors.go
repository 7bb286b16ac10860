package main

import (
	"context"
	"errors"
	"github.com/umbra-store/umbra/internal/api"
	"io/fs"
	"strings"

	"github.com/umbra-store/umbra/blockstore"
	"github.com/umbra-store/umbra/erasure"
	"github.com/umbra-store/umbra/internal/engine"
	"github.com/umbra-store/umbra/internal/format"
	"github.com/umbra-store/umbra/internal/node"
	"github.com/umbra-store/umbra/internal/seal"
	"github.com/umbra-store/umbra/keyring"
)

// Exit codes. They are part of the CLI's interface (README "Exit codes").
const (
	exitError       = 1 // anything else
	exitUsage       = 2 // bad flags, arguments or capability
	exitNotFound    = 3 // data not present or not enough shards
	exitCorrupt     = 4 // data failed authentication
	exitInterrupted = 130
	exitBrokenPipe  = 141 // 128+SIGPIPE: standard output's reader went away
)

// usageError marks errors in how the command was called.
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

// describe turns an error into one line a person can act on, and an exit
// code. Package prefixes stay where they name the part that failed.
func describe(err error) (string, int) {
	var ue usageError
	var ae *api.Error
	var pe *fs.PathError
	var se *erasure.StripeError
	switch {
	case errors.Is(err, context.Canceled):
		return "interrupted", exitInterrupted
	case errors.Is(err, api.ErrNoDaemon):
		return strings.TrimPrefix(err.Error(), "api: ") + ": start one with 'umbra daemon' (or 'umbra testnet up'), or use --offline for the local store alone", exitError
	case errors.As(err, &ae):
		code := map[string]int{api.KindUsage: exitUsage, api.KindNotFound: exitNotFound, api.KindCorrupt: exitCorrupt}[ae.Kind]
		if code == 0 {
			code = exitError
		}
		msg := ae.Msg
		if ae.Kind == api.KindNotFound && strings.Contains(msg, "file not found") {
			msg = "no such file on this node or its peers (is the capability for another network?)"
		}
		return msg, code
	case errors.As(err, &ue):
		return ue.Error() + " (see --help)", exitUsage
	case errors.Is(err, keyring.ErrChecksum):
		return "that capability is mistyped or cut short: its checksum does not match", exitUsage
	case errors.Is(err, keyring.ErrTruncated), errors.Is(err, keyring.ErrUnknownKind),
		errors.Is(err, keyring.ErrMalformed), errors.Is(err, keyring.ErrVersion), errors.Is(err, keyring.ErrWrongKind):
		return strings.TrimPrefix(err.Error(), "keyring: "), exitUsage
	case errors.Is(err, erasure.ErrParams):
		return strings.TrimPrefix(err.Error(), "erasure: "), exitUsage
	case errors.Is(err, keyring.ErrNotInit), errors.Is(err, keyring.ErrExists), errors.Is(err, keyring.ErrPermissions):
		return strings.TrimPrefix(err.Error(), "keyring: "), exitError
	case errors.Is(err, node.ErrLocked):
		return strings.TrimPrefix(err.Error(), "node: ") + "; stop it or use another --path", exitError
	case errors.As(err, &se):
		return "the file cannot be rebuilt: " + strings.TrimPrefix(err.Error(), "engine: ") + " (run on a node that holds its shards)", exitNotFound
	case errors.Is(err, engine.ErrNotFound):
		return "no such file in this node's store (is the capability for another node, or was the file never stored here?)", exitNotFound
	case errors.Is(err, format.ErrAuth), errors.Is(err, format.ErrMalformed), errors.Is(err, format.ErrVersion), errors.Is(err, seal.ErrAuth), errors.Is(err, engine.ErrCorrupt), errors.Is(err, blockstore.ErrHashMismatch):
		return "data failed authentication: the capability does not match the stored data, or the data is corrupt", exitCorrupt
	case errors.As(err, &pe):
		return pe.Op + " " + pe.Path + ": " + pe.Err.Error(), exitError
	}
	return err.Error(), exitError
}
