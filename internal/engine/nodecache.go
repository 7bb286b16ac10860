package engine

import (
	"sync"

	"github.com/umbra-store/umbra/internal/format"
)

// engineNodes is how many opened manifest nodes the engine keeps. A node
// is immutable (named by its digest, opened with its key), so a kept one
// is as good as a fetched one; a node holds at most 256 KiB of plaintext.
const engineNodes = 32

// nodeCache keeps opened manifest nodes by digest ‖ read key, the oldest
// out first.
type nodeCache struct {
	mu    sync.Mutex
	m     map[[64]byte]cachedNode
	order [][64]byte
}

type cachedNode struct {
	n    *format.Node
	size int
}

func (c *nodeCache) get(id [64]byte) (*format.Node, int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cn, ok := c.m[id]
	return cn.n, cn.size, ok
}

func (c *nodeCache) put(id [64]byte, n *format.Node, size int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[[64]byte]cachedNode{}
	}
	if _, ok := c.m[id]; ok {
		return
	}
	if len(c.order) == engineNodes {
		delete(c.m, c.order[0])
		c.order = c.order[1:]
	}
	c.m[id] = cachedNode{n, size}
	c.order = append(c.order, id)
}
