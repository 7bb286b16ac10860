package main

import "syscall"

// processUmask is read once, before any goroutine can create files: reading
// it means setting it, and a zero umask must never be visible to others.
var processUmask = func() uint32 {
	m := syscall.Umask(0)
	syscall.Umask(m)
	return uint32(m)
}()

func umask() uint32 { return processUmask }
