package fuse

import (
	"context"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/umbra-store/umbra/internal/dirs"
)

// fileDir is the root of a mounted file: a folder holding that one file.
type fileDir struct {
	fs.Inode
	m    *mount
	file dirs.Entry
	attr dirs.Entry
}

var (
	_ = (fs.NodeOnAdder)((*fileDir)(nil))
	_ = (fs.NodeGetattrer)((*fileDir)(nil))
)

func (d *fileDir) OnAdd(ctx context.Context) {
	node, mode := d.m.node(&dirNode{m: d.m}, d.file)
	d.AddChild(d.file.Name, d.NewPersistentInode(ctx, node, fs.StableAttr{Mode: mode, Ino: ino("", d.file)}), false)
}

func (d *fileDir) Getattr(ctx context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	d.m.fill(d.attr, &out.Attr)
	return 0
}
