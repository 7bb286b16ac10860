// Package fuse will mount a directory capability as a drive with go-fuse v2.
// It arrives with the FUSE issue; nothing in the core uses it.
package fuse
