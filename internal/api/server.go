package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/umbra-store/umbra/internal/config"
	"github.com/umbra-store/umbra/internal/engine"
	"github.com/umbra-store/umbra/internal/kind"
	"github.com/umbra-store/umbra/keyring"
)

// Backend is what the API serves from.
type Backend interface {
	Engine() *engine.Engine
	DefaultShards() string
	Status(ctx context.Context) (Status, error)
	Peers(ctx context.Context) []Peer
	// Working marks a put or get running for the user; the returned func
	// ends it.
	Working() func()
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
	if wantsFD(r) {
		s.upgrade(w, r, false, func(ctx context.Context, f *os.File, progress func(int64)) (any, error) {
			opts.Progress = progress
			res, err := s.b.Engine().Put(ctx, f, opts)
			if err != nil {
				return nil, err
			}
			return putResult(res), nil
		})
		return
	}
	res, err := s.b.Engine().Put(r.Context(), r.Body, opts)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, putResult(res))
}

func putResult(res engine.PutResult) PutResult {
	return PutResult{Cap: res.Cap.Encode(), Size: res.Size, Chunks: res.Chunks, Warnings: res.Warnings}
}

// statCap reads the request's capability and the file's root, answering the
// error itself when either fails.
func (s *Server) statCap(w http.ResponseWriter, r *http.Request) (keyring.ReadCap, engine.FileInfo, bool) {
	c, err := keyring.ParseReadCap(r.Header.Get(CapHeader))
	if err == nil {
		var info engine.FileInfo
		if info, err = s.b.Engine().Stat(r.Context(), c); err == nil {
			return c, info, true
		}
	}
	s.fail(w, err)
	return keyring.ReadCap{}, engine.FileInfo{}, false
}

func (s *Server) stat(w http.ResponseWriter, r *http.Request) {
	if _, info, ok := s.statCap(w, r); ok {
		writeJSON(w, Stat{Size: info.Size, Name: info.Name, K: info.K, M: info.M})
	}
}

func (s *Server) get(w http.ResponseWriter, r *http.Request) {
	defer s.b.Working()()
	off, length, err := rangeOf(r)
	if err != nil {
		s.fail(w, err)
		return
	}
	c, info, ok := s.statCap(w, r)
	if !ok {
		return
	}
	if wantsFD(r) {
		s.upgrade(w, r, true, func(ctx context.Context, f *os.File, progress func(int64)) (any, error) {
			return struct{}{}, s.b.Engine().ReadRange(ctx, c, off, length, &countingWriter{w: f, progress: progress})
		})
		return
	}
	// An error after the first byte can only travel in the trailer.
	w.Header().Set("Trailer", ErrorHeader)
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Umbra-Size", strconv.FormatUint(info.Size, 10))
	w.WriteHeader(http.StatusOK)
	if err := s.b.Engine().ReadRange(r.Context(), c, off, length, w); err != nil {
		b, _ := json.Marshal(body(err))
		w.Header().Set(ErrorHeader, string(b))
		s.log.Warn("get failed", "err", err)
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
