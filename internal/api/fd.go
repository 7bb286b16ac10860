package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/umbra-store/umbra/internal/kind"
)

// FDUpgrade is the Upgrade token of a put or get that hands the daemon a file
// descriptor instead of streaming the bytes through the socket: the daemon
// reads the file to store, or writes the file it reads, itself. Over a unix
// socket this saves one copy of every byte through the kernel on each side,
// which on small machines is a large part of a transfer's cost.
//
// After the 101 answer the client sends one byte carrying the descriptor
// (SCM_RIGHTS); the daemon then sends JSON lines: {"done":N} as bytes are
// consumed or written, and last {"result":{...}} or {"error":"…","kind":"…"}.
// The client closing the connection cancels the operation.
const FDUpgrade = "umbra-fd/1"

// progressEvery is how often an fd operation reports progress.
const progressEvery = 200 * time.Millisecond

// pipeSize is the capacity asked for a pipe handed to the daemon: fewer,
// larger copies through the kernel (Linux caps it at pipe-max-size, 1 MiB by
// default, without privilege).
const pipeSize = 1 << 20

// fdLine is one line the daemon sends after the upgrade.
type fdLine struct {
	Done   *int64          `json:"done,omitempty"`
	Files  *int64          `json:"files,omitempty"` // a tree transfer's files done
	Result json.RawMessage `json:"result,omitempty"`
	Error  string          `json:"error,omitempty"`
	Kind   string          `json:"kind,omitempty"`
}

// fdOp runs an operation on the handed-over file, calling progress with the
// bytes (and, for a tree, files; else -1) done so far, and returns the
// result to send.
type fdOp func(ctx context.Context, f *os.File, progress func(bytes, files int64)) (any, error)

// bytesOnly adapts a progress func to a byte count.
func bytesOnly(progress func(bytes, files int64)) func(int64) {
	return func(n int64) { progress(n, -1) }
}

func wantsFD(r *http.Request) bool { return r.Header.Get("Upgrade") == FDUpgrade }

// upgrade takes over the connection, receives the client's descriptor and
// runs op on it; write tells whether op writes the file (get) or reads it
// (put). Every error from here on travels as an error line.
func (s *Server) upgrade(w http.ResponseWriter, r *http.Request, write bool, op fdOp) {
	if !s.track() {
		s.fail(w, errors.New("api: the daemon is shutting down"))
		return
	}
	defer s.ops.Done()
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		s.fail(w, fmt.Errorf("api: %w", err))
		return
	}
	defer conn.Close()
	uc, ok := conn.(*net.UnixConn)
	if !ok || brw.Reader.Buffered() > 0 {
		return // not a unix socket, or the client did not wait for the answer
	}
	_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: " + FDUpgrade + "\r\n\r\n")
	if brw.Flush() != nil {
		return
	}
	send := func(l fdLine) error {
		b, _ := json.Marshal(l)
		_, err := conn.Write(append(b, '\n'))
		return err
	}
	_ = uc.SetReadDeadline(time.Now().Add(10 * time.Second))
	f, err := recvFD(uc)
	_ = uc.SetReadDeadline(time.Time{})
	if err != nil {
		_ = send(fdLine{Error: err.Error(), Kind: kind.Other.String()})
		return
	}
	f = ownPipe(f, write)
	defer f.Close()

	ctx, cancel := context.WithCancel(s.base)
	defer cancel()
	stopCtx := context.AfterFunc(r.Context(), cancel)
	defer stopCtx()
	// A cancelled operation must not stay blocked on the file: closing a
	// pipe we reopened non-blocking ends a read or write in progress.
	stopFile := context.AfterFunc(ctx, func() { _ = f.Close() })
	defer stopFile()
	go func() { // the client hanging up cancels
		var b [1]byte
		_, _ = uc.Read(b[:])
		cancel()
	}()
	progress, stopProgress := reportProgress(send)
	res, err := op(ctx, f, progress)
	stopProgress()
	if err != nil {
		b := body(err)
		switch {
		case errors.Is(err, syscall.EPIPE):
			b.Kind = kind.BrokenPipe.String() // the reader went away: not the daemon's failure
		case ctx.Err() != nil && errors.Is(err, context.Canceled):
		default:
			// The kind only: the message may hold a file or folder name.
			s.log.Warn("request failed", "path", r.URL.Path, "kind", kind.Of(err).String())
		}
		_ = send(fdLine{Error: b.Error, Kind: b.Kind})
		return
	}
	raw, err := json.Marshal(res)
	if err != nil {
		_ = send(fdLine{Error: err.Error(), Kind: kind.Other.String()})
		return
	}
	_ = send(fdLine{Result: raw})
}

// reportProgress sends the bytes done so far every progressEvery, from a
// goroutine of its own: a client that stops reading (suspended) must not
// stall the transfer. progress records the count; stop ends the reports.
func reportProgress(send func(fdLine) error) (progress func(bytes, files int64), stop func()) {
	var done, files atomic.Int64
	done.Store(-1)
	files.Store(-1)
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(progressEvery)
		defer t.Stop()
		sent := int64(-1)
		for {
			select {
			case <-quit:
				return
			case <-t.C:
				if n := done.Load(); n != sent {
					sent = n
					l := fdLine{Done: &n}
					if f := files.Load(); f >= 0 {
						l.Files = &f
					}
					if send(l) != nil {
						return
					}
				}
			}
		}
	}()
	return func(n, f int64) { files.Store(f); done.Store(n) }, func() { close(quit); wg.Wait() }
}

// ownPipe gives the daemon a file description of its own for a pipe: the
// client's is shared with it (and often with its shell) and blocking, and a
// blocked read or write on it could not be ended when the operation is
// cancelled. Reopened through /proc and non-blocking, it goes through Go's
// poller, and Close ends a call in progress. The pipe gets a 1 MiB buffer if
// it is smaller (best effort). Anything else is returned as it is.
func ownPipe(f *os.File, write bool) *os.File {
	st, err := f.Stat()
	if err != nil || st.Mode()&os.ModeNamedPipe == 0 {
		return f
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return f
	}
	nfd := -1
	_ = rc.Control(func(fd uintptr) {
		flag := unix.O_RDONLY
		if write {
			flag = unix.O_WRONLY
		}
		nfd, err = unix.Open(fmt.Sprintf("/proc/self/fd/%d", fd), flag|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	})
	if err != nil || nfd < 0 {
		return f
	}
	if size, err := unix.FcntlInt(uintptr(nfd), unix.F_GETPIPE_SZ, 0); err == nil && size < pipeSize {
		_, _ = unix.FcntlInt(uintptr(nfd), unix.F_SETPIPE_SZ, pipeSize)
	}
	f.Close()
	return os.NewFile(uintptr(nfd), "client pipe")
}

// recvFD reads the one byte that carries the client's descriptor.
func recvFD(uc *net.UnixConn) (*os.File, error) {
	var b [1]byte
	oob := make([]byte, unix.CmsgSpace(4*4))
	_, oobn, _, _, err := uc.ReadMsgUnix(b[:], oob)
	if err != nil {
		return nil, fmt.Errorf("api: no file descriptor received: %w", err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	var fds []int
	for i := range msgs {
		got, err := unix.ParseUnixRights(&msgs[i])
		if err == nil {
			fds = append(fds, got...)
		}
	}
	if len(fds) != 1 {
		for _, fd := range fds {
			_ = unix.Close(fd)
		}
		return nil, fmt.Errorf("api: expected one file descriptor, got %d", len(fds))
	}
	return os.NewFile(uintptr(fds[0]), "client file"), nil
}

// track counts a hijacked operation, which http.Server.Shutdown does not
// see; false once the server is shutting down.
func (s *Server) track() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.ops.Add(1)
	return true
}

// withFD runs a put or get with f handed to the daemon. result, if not nil,
// receives the final result.
func (c *Client) withFD(ctx context.Context, method, path string, hdr map[string]string, f *os.File, progress func(bytes, files int64), result any) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.path)
	if err != nil {
		return fmt.Errorf("%w (%v)", ErrNoDaemon, err)
	}
	defer conn.Close()
	uc := conn.(*net.UnixConn)
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	fail := func(err error) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("api: daemon: %w", err)
	}

	req, err := http.NewRequest(method, "http://umbra"+path, nil)
	if err != nil {
		return err
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", FDUpgrade)
	if err := req.Write(conn); err != nil {
		return fail(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return fail(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		defer resp.Body.Close()
		return decodeErr(resp)
	}
	raw, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		_, _, serr = uc.WriteMsgUnix([]byte{0}, unix.UnixRights(int(fd)), nil)
	}); err != nil {
		return err
	}
	if serr != nil {
		return fail(serr)
	}
	return readLines(br, progress, result, fail)
}

// readLines reads the daemon's JSON lines after a hand-over until the
// result or an error.
func readLines(br *bufio.Reader, progress func(bytes, files int64), result any, fail func(error) error) error {
	for {
		line, err := br.ReadBytes('\n')
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return fail(err)
		}
		var l fdLine
		if err := json.Unmarshal(line, &l); err != nil {
			return fail(fmt.Errorf("malformed answer: %w", err))
		}
		switch {
		case l.Done != nil:
			if progress != nil {
				files := int64(-1)
				if l.Files != nil {
					files = *l.Files
				}
				progress(*l.Done, files)
			}
		case l.Error != "" || l.Kind != "":
			return newError(l.Kind, l.Error)
		case l.Result != nil:
			if result == nil {
				return nil
			}
			return json.Unmarshal(l.Result, result)
		}
	}
}

// PutFile has the daemon read f itself and store it. progress, if set, is
// called with the bytes stored so far.
func (c *Client) PutFile(ctx context.Context, f *os.File, o PutOptions, progress func(int64)) (PutResult, error) {
	var res PutResult
	err := c.withFD(ctx, http.MethodPost, "/v1/put?"+o.query(), o.header(), f, dropFiles(progress), &res)
	return res, err
}

// dropFiles adapts a byte-count callback (nil stays nil).
func dropFiles(progress func(int64)) func(bytes, files int64) {
	if progress == nil {
		return nil
	}
	return func(n, _ int64) { progress(n) }
}

// GetTo has the daemon write the file into f itself. progress, if set, is
// called with the bytes written so far.
func (c *Client) GetTo(ctx context.Context, capText string, f *os.File, progress func(int64)) (GetResult, error) {
	var res GetResult
	err := c.withFD(ctx, http.MethodGet, "/v1/get", map[string]string{CapHeader: capText}, f, dropFiles(progress), &res)
	return res, err
}

// countingWriter reports the bytes written through it.
type countingWriter struct {
	w        io.Writer
	n        int64
	progress func(int64)
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	c.progress(c.n)
	return n, err
}
