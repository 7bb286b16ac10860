package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/umbra-store/umbra/blockstore"
	"github.com/umbra-store/umbra/internal/config"
	"github.com/umbra-store/umbra/internal/dirs"
	"github.com/umbra-store/umbra/internal/engine"
	"github.com/umbra-store/umbra/internal/kind"
	"github.com/umbra-store/umbra/internal/network"
	"github.com/umbra-store/umbra/internal/xfer"
	"github.com/umbra-store/umbra/keyring"
)

// Backend is what the API serves from.
type Backend interface {
	Engine() *engine.Engine
	Dirs() *dirs.Service
	DefaultShards() string
	Status(ctx context.Context) (Status, error)
	Peers(ctx context.Context) []Peer
	// Working marks a put or get running for the user; the returned func
	// ends it.
	Working() func()
	// GC collects the blocks whose leases all expired, now.
	GC(ctx context.Context) (blockstore.GCStats, error)
	// Maintainer checks and repairs files (nil: no network).
	Maintainer() *network.Maintainer
	// Maintain runs maintenance over the node's maintain list now.
	Maintain(ctx context.Context) (MaintStatus, error)
	// Remember adds a file this node's user stored to the maintain list.
	Remember(vc keyring.VerifyCap)
	// Mount mounts req.Ref on req.Dir, calls ready once mounted, and
	// returns when the mount ends: unmounted from outside, by Unmount, or
	// because ctx ended (it then unmounts).
	Mount(ctx context.Context, req MountRequest, ready func(MountStatus)) error
	// Unmount ends the mount on dir, everything written published
	// (kind.NotFound: none of this daemon's).
	Unmount(ctx context.Context, dir string) error
	// Transfers are the daemon's totals of every put's and get's
	// counters.
	Transfers() *xfer.Counters
}

// Server serves the API.
type Server struct {
	b   Backend
	log *slog.Logger
	srv *http.Server
	ln  net.Listener

	// Operations on a handed-over descriptor run on hijacked connections,
	// which http.Server does not track: base cancels them, ops counts them.
	base    context.Context
	stop    context.CancelFunc
	mu      sync.Mutex
	closing bool
	ops     sync.WaitGroup
}

// Listen creates the socket (mode 0600) at path, replacing a stale one.
func Listen(path string, b Backend, log *slog.Logger) (*Server, error) {
	if c, err := net.Dial("unix", path); err == nil {
		c.Close()
		return nil, fmt.Errorf("api: a daemon already answers on %s", path)
	}
	_ = os.Remove(path) // stale socket of a daemon that died
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("api: listen: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("api: %w", err)
	}
	s := &Server{b: b, log: log, ln: ln}
	s.base, s.stop = context.WithCancel(context.Background())
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/put", s.put)
	mux.HandleFunc("GET /v1/get", s.get)
	mux.HandleFunc("GET /v1/stat", s.stat)
	mux.HandleFunc("GET /v1/status", s.status)
	mux.HandleFunc("GET /v1/peers", s.peers)
	mux.HandleFunc("POST /v1/put-batch", s.putBatch)
	mux.HandleFunc("POST /v1/gc", s.gc)
	mux.HandleFunc("POST /v1/check", s.check)
	mux.HandleFunc("POST /v1/maintain", s.maintain)
	mux.HandleFunc("POST /v1/mount", s.mount)
	mux.HandleFunc("POST /v1/unmount", s.unmount)
	s.dirRoutes(mux)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	return s, nil
}

// Serve serves until Shutdown.
func (s *Server) Serve() error {
	err := s.srv.Serve(s.ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Close stops the server at once, closing every connection and cancelling
// every operation.
func (s *Server) Close() error {
	s.setClosing()
	s.stop()
	err := s.srv.Close()
	// Cancelled operations end at once (their files are closed); a bounded
	// wait all the same, so that nothing can keep the daemon from exiting.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if s.waitOps(ctx) != nil {
		s.log.Warn("api: operations still running at close")
	}
	return err
}

// Shutdown stops the server, letting running requests end first.
func (s *Server) Shutdown(ctx context.Context) error {
	s.setClosing()
	if err := s.srv.Shutdown(ctx); err != nil {
		return err
	}
	return s.waitOps(ctx)
}

func (s *Server) setClosing() {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
}

// waitOps waits for the operations on handed-over descriptors to end.
func (s *Server) waitOps(ctx context.Context) error {
	done := make(chan struct{})
	go func() { s.ops.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// fail answers err with its kind's HTTP status (internal/kind's table).
func (s *Server) fail(w http.ResponseWriter, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(kind.Of(err).HTTPStatus())
	_ = json.NewEncoder(w).Encode(body(err))
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) put(w http.ResponseWriter, r *http.Request) {
	defer s.b.Working()()
	q := r.URL.Query()
	shards := q.Get("shards")
	if shards == "" {
		shards = s.b.DefaultShards()
	}
	k, m, err := config.ParseShards(shards)
	if err != nil {
		s.fail(w, err)
		return
	}
	opts := engine.PutOptions{
		K: k, M: m, RandomKey: q.Get("random-key") == "1", Name: q.Get("name"),
		AllowFewerPeers: q.Get("allow-fewer-peers") == "1",
	}
	meta, err := fileMeta(q)
	if err != nil {
		s.fail(w, err)
		return
	}
	dest := r.Header.Get(PathHeader)
	if e := q.Get("expire"); e != "" {
		secs, err := strconv.ParseInt(e, 10, 64)
		if err != nil || secs < 1 || dest != "" {
			s.fail(w, kind.New(kind.Usage, "api: expire: seconds ≥ 1, for a file of its own"))
			return
		}
		opts = SelfDestruct(opts, time.Duration(secs)*time.Second)
	}
	run := func(ctx context.Context, in io.Reader, progress func(int64)) (any, error) {
		opts.Progress = progress
		xc := new(xfer.Counters)
		ctx = xfer.With(ctx, xc)
		defer s.b.Transfers().Add(xc)
		if dest != "" {
			e, err := s.b.Dirs().PutFile(ctx, in, dest, q.Get("name"), meta, opts)
			rep := xc.Report()
			return PutResult{Size: e.Size, Entry: &e, Stats: &rep}, err
		}
		res, err := s.b.Engine().Put(ctx, in, opts)
		if err == nil && opts.Expiry == 0 {
			s.b.Remember(res.Cap.Verify()) // kept alive by this node's maintenance
		}
		pr := putResult(res)
		rep := xc.Report()
		pr.Stats = &rep
		return pr, err
	}
	if wantsFD(r) {
		s.upgrade(w, r, false, func(ctx context.Context, f *os.File, progress func(bytes, files int64)) (any, error) {
			return run(ctx, f, bytesOnly(progress))
		})
		return
	}
	res, err := run(r.Context(), r.Body, nil)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, res)
}

func putResult(res engine.PutResult) PutResult {
	return PutResult{Cap: res.Cap.Encode(), Size: res.Size, Chunks: res.Chunks, Warnings: res.Warnings}
}

// fileRef is the file a get or stat names: by capability, or by path
// (stored inside its folder, or a file of its own).
type fileRef struct {
	cap    keyring.ReadCap
	inline []byte
	isCap  bool
	info   engine.FileInfo
}

// openFile reads the request's capability or path and the file's root,
// answering the error itself when either fails.
func (s *Server) openFile(w http.ResponseWriter, r *http.Request) (fileRef, bool) {
	f, err := s.resolveFile(r.Context(), r.Header.Get(CapHeader))
	if err != nil {
		s.fail(w, err)
		return fileRef{}, false
	}
	return f, true
}

func (s *Server) resolveFile(ctx context.Context, text string) (fileRef, error) {
	if strings.HasPrefix(text, "umbra:") && !strings.Contains(text, "/") {
		c, err := keyring.ParseReadCap(text)
		if err != nil {
			return fileRef{}, err
		}
		info, err := s.b.Engine().Stat(ctx, c)
		return fileRef{cap: c, isCap: true, info: info}, err
	}
	f, err := s.b.Dirs().OpenFile(ctx, text)
	if err != nil {
		return fileRef{}, err
	}
	if f.Cap == nil {
		return fileRef{inline: f.Inline, info: engine.FileInfo{Size: uint64(len(f.Inline)), Name: f.Name}}, nil
	}
	info, err := s.b.Engine().Stat(ctx, *f.Cap)
	if info.Name == "" {
		info.Name = f.Name
	}
	return fileRef{cap: *f.Cap, isCap: true, info: info}, err
}

// readRange writes length bytes from off (-1: to the end) of f to w.
func (s *Server) readRange(ctx context.Context, f fileRef, off, length int64, w io.Writer) error {
	if f.isCap {
		return s.b.Engine().ReadRange(ctx, f.cap, off, length, w)
	}
	if off < 0 || off > int64(len(f.inline)) {
		return fmt.Errorf("%w: offset %d of a %d-byte file", errRange, off, len(f.inline))
	}
	end := int64(len(f.inline))
	if length >= 0 {
		end = min(end, off+length)
	}
	_, err := w.Write(f.inline[off:end])
	return err
}

func (s *Server) stat(w http.ResponseWriter, r *http.Request) {
	if f, ok := s.openFile(w, r); ok {
		writeJSON(w, Stat{Size: f.info.Size, Name: f.info.Name, K: f.info.K, M: f.info.M})
	}
}

func (s *Server) get(w http.ResponseWriter, r *http.Request) {
	defer s.b.Working()()
	off, length, err := rangeOf(r)
	if err != nil {
		s.fail(w, err)
		return
	}
	f, ok := s.openFile(w, r)
	if !ok {
		return
	}
	if wantsFD(r) {
		s.upgrade(w, r, true, func(ctx context.Context, fh *os.File, progress func(bytes, files int64)) (any, error) {
			xc := new(xfer.Counters)
			defer s.b.Transfers().Add(xc)
			err := s.readRange(xfer.With(ctx, xc), f, off, length, &countingWriter{w: fh, progress: bytesOnly(progress)})
			return GetResult{Stats: xc.Report()}, err
		})
		return
	}
	// An error after the first byte can only travel in the trailer.
	w.Header().Set("Trailer", ErrorHeader)
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Umbra-Size", strconv.FormatUint(f.info.Size, 10))
	w.WriteHeader(http.StatusOK)
	xc := new(xfer.Counters)
	defer s.b.Transfers().Add(xc)
	if err := s.readRange(xfer.With(r.Context(), xc), f, off, length, w); err != nil {
		b, _ := json.Marshal(body(err))
		w.Header().Set(ErrorHeader, string(b))
		s.log.Warn("get failed", "kind", kind.Of(err).String()) // the message may hold a name
	}
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	st, err := s.b.Status(r.Context())
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, st)
}

func (s *Server) peers(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, s.b.Peers(r.Context()))
}

// errRange: the offset or length of a get is not a number.
var errRange = kind.New(kind.Usage, "api: offset and length must be whole numbers")

// rangeOf reads a get's optional offset (default 0) and length (default:
// to the end).
func rangeOf(r *http.Request) (off, length int64, err error) {
	q := r.URL.Query()
	length = -1
	if v := q.Get("offset"); v != "" {
		if off, err = strconv.ParseInt(v, 10, 64); err != nil {
			return 0, 0, fmt.Errorf("%w: offset %q", errRange, v)
		}
	}
	if v := q.Get("length"); v != "" {
		if length, err = strconv.ParseInt(v, 10, 64); err != nil {
			return 0, 0, fmt.Errorf("%w: length %q", errRange, v)
		}
	}
	return off, length, nil
}

func (s *Server) gc(w http.ResponseWriter, r *http.Request) {
	st, err := s.b.GC(r.Context())
	s.reply(w, st, err)
}

// GC has the daemon collect expired blocks now.
func (c *Client) GC(ctx context.Context) (blockstore.GCStats, error) {
	resp, err := c.do(ctx, http.MethodPost, "/v1/gc", nil, nil)
	if err != nil {
		return blockstore.GCStats{}, err
	}
	defer resp.Body.Close()
	var st blockstore.GCStats
	return st, json.NewDecoder(resp.Body).Decode(&st)
}
