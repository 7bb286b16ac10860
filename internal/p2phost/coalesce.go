package p2phost

import (
	"context"
	"net"
	"sync"

	ci "github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/core/sec"
	tptu "github.com/libp2p/go-libp2p/p2p/net/upgrader"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
)

// coalesceMax is the most a batch of TLS records gathers before it goes out.
const coalesceMax = 256 << 10

// coalescingTLS is libp2p's TLS 1.3 security transport with one change: the
// records that one Write of the secure connection turns into reach the
// socket in one write, not one write per 16 KiB record. The muxer writes
// frames of up to 64 KiB, so bulk transfers make a quarter of the syscalls;
// on this project's 2-core VM a syscall on loopback TCP costs more than
// encrypting the record it carries. Bytes on the wire are unchanged.
type coalescingTLS struct{ inner *libp2ptls.Transport }

var _ sec.SecureTransport = (*coalescingTLS)(nil)

// newCoalescingTLS has the signature libp2p.Security injects.
func newCoalescingTLS(id protocol.ID, key ci.PrivKey, muxers []tptu.StreamMuxer) (*coalescingTLS, error) {
	t, err := libp2ptls.New(id, key, muxers)
	if err != nil {
		return nil, err
	}
	return &coalescingTLS{inner: t}, nil
}

func (t *coalescingTLS) ID() protocol.ID { return t.inner.ID() }

func (t *coalescingTLS) SecureInbound(ctx context.Context, insecure net.Conn, p peer.ID) (sec.SecureConn, error) {
	bc := &batchConn{Conn: insecure}
	sc, err := t.inner.SecureInbound(ctx, bc, p)
	if err != nil {
		return nil, err
	}
	return &batchedConn{SecureConn: sc, bc: bc}, nil
}

func (t *coalescingTLS) SecureOutbound(ctx context.Context, insecure net.Conn, p peer.ID) (sec.SecureConn, error) {
	bc := &batchConn{Conn: insecure}
	sc, err := t.inner.SecureOutbound(ctx, bc, p)
	if err != nil {
		return nil, err
	}
	return &batchedConn{SecureConn: sc, bc: bc}, nil
}

// batchedConn brackets each Write of the secure connection with a batch on
// the connection beneath.
type batchedConn struct {
	sec.SecureConn
	wmu sync.Mutex // one batch at a time
	bc  *batchConn
}

// Close ends a batch stuck on a peer that stopped reading at once, as
// tls.Conn.Close does for a Write in progress (the batch goes out after
// TLS's Write returned, where TLS no longer sees it).
func (c *batchedConn) Close() error {
	if c.wmu.TryLock() {
		c.wmu.Unlock()
	} else {
		_ = c.bc.Conn.Close()
	}
	return c.SecureConn.Close()
}

func (c *batchedConn) Write(b []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.bc.begin()
	n, err := c.SecureConn.Write(b)
	if ferr := c.bc.end(); err == nil && ferr != nil {
		return n, ferr
	}
	return n, err
}

// batchConn is the raw connection under TLS. Between begin and end it
// gathers what TLS writes (sending early when coalesceMax is reached);
// outside a batch it writes through. Anything TLS writes during a batch from
// another goroutine (an alert from a Read) joins the batch, so the order of
// bytes on the wire is the order TLS wrote them.
type batchConn struct {
	net.Conn
	mu       sync.Mutex
	batching bool
	buf      []byte // from batchBufs during a batch
	// err is the first failed write: TLS counted the records it carried
	// as sent, so nothing may follow them on this connection.
	err error
}

// batchBufs lends batch buffers: a connection holds one only while a batch
// is open.
var batchBufs = sync.Pool{New: func() any { b := make([]byte, 0, coalesceMax); return &b }}

func (c *batchConn) begin() {
	c.mu.Lock()
	c.batching = true
	c.mu.Unlock()
}

func (c *batchConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	if !c.batching {
		n, err := c.Conn.Write(b)
		if err != nil {
			c.err = err
		}
		return n, err
	}
	if len(c.buf)+len(b) > coalesceMax && len(c.buf) > 0 {
		if c.err = c.flushLocked(); c.err != nil {
			return 0, c.err
		}
	}
	if len(b) >= coalesceMax {
		if _, c.err = c.Conn.Write(b); c.err != nil {
			return 0, c.err
		}
		return len(b), nil
	}
	if c.buf == nil {
		c.buf = (*batchBufs.Get().(*[]byte))[:0]
	}
	c.buf = append(c.buf, b...)
	return len(b), nil
}

func (c *batchConn) flushLocked() error {
	if len(c.buf) == 0 {
		return nil
	}
	_, err := c.Conn.Write(c.buf)
	c.buf = c.buf[:0]
	return err
}

// end sends the batch, leaves batching and gives the buffer back.
func (c *batchConn) end() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.batching = false
	if c.err == nil {
		c.err = c.flushLocked()
	}
	if c.buf != nil {
		b := c.buf[:0]
		batchBufs.Put(&b)
		c.buf = nil
	}
	return c.err
}
