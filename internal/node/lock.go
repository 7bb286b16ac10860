package node

import (
	"errors"
	"syscall"
)

// isLockErr reports whether Pebble failed to take its directory lock.
func isLockErr(err error) bool {
	return errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EWOULDBLOCK)
}
