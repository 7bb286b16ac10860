package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/umbra-store/umbra/internal/dirs"
	"github.com/umbra-store/umbra/internal/engine"
	"github.com/umbra-store/umbra/internal/kind"
)

// Folder endpoints. Paths travel in the Umbra-Path and Umbra-To headers.
//
//	POST /v1/mkdir?parents=1          Umbra-Path (none: a new folder) → {"cap"}
//	GET  /v1/ls                       Umbra-Path → [entry]
//	POST /v1/rm?recursive=1           Umbra-Path
//	POST /v1/mv                       Umbra-Path, Umbra-To
//	POST /v1/ln                       Umbra-Capability, Umbra-Path
//	GET  /v1/share?as=read|verify|write  Umbra-Path → {"cap"}
//	POST /v1/put-tree                 Umbra-Path; a directory handed over (umbra-fd/1)
//	POST /v1/get-tree?force=1&umask=022  Umbra-Path; a directory handed over (umbra-fd/1)
//
// A put with Umbra-Path (and name, mode, mtime) stores into a folder; a get
// or stat takes a path in Umbra-Capability.

func (s *Server) dirRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/mkdir", s.mkdir)
	mux.HandleFunc("GET /v1/ls", s.ls)
	mux.HandleFunc("POST /v1/rm", s.rm)
	mux.HandleFunc("POST /v1/mv", s.mv)
	mux.HandleFunc("POST /v1/ln", s.link)
	mux.HandleFunc("GET /v1/share", s.share)
	mux.HandleFunc("POST /v1/put-tree", s.putTree)
	mux.HandleFunc("POST /v1/get-tree", s.getTree)
}

// CapResult is an answer that is a capability.
type CapResult struct {
	Cap string `json:"cap,omitempty"`
}

var errNeedFD = kind.New(kind.Usage, "api: a tree transfer hands the daemon a directory (Upgrade: umbra-fd/1)")

// reply answers v, or err.
func (s *Server) reply(w http.ResponseWriter, v any, err error) {
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, v)
}

func (s *Server) mkdir(w http.ResponseWriter, r *http.Request) {
	defer s.b.Working()()
	c, err := s.b.Dirs().Mkdir(r.Context(), r.Header.Get(PathHeader), r.URL.Query().Get("parents") == "1")
	s.reply(w, CapResult{Cap: c}, err)
}

func (s *Server) ls(w http.ResponseWriter, r *http.Request) {
	es, err := s.b.Dirs().List(r.Context(), r.Header.Get(PathHeader))
	if es == nil {
		es = []dirs.Entry{}
	}
	s.reply(w, es, err)
}

func (s *Server) rm(w http.ResponseWriter, r *http.Request) {
	defer s.b.Working()()
	err := s.b.Dirs().Remove(r.Context(), r.Header.Get(PathHeader), r.URL.Query().Get("recursive") == "1")
	s.reply(w, struct{}{}, err)
}

func (s *Server) mv(w http.ResponseWriter, r *http.Request) {
	defer s.b.Working()()
	err := s.b.Dirs().Move(r.Context(), r.Header.Get(PathHeader), r.Header.Get(ToHeader))
	s.reply(w, struct{}{}, err)
}

func (s *Server) link(w http.ResponseWriter, r *http.Request) {
	defer s.b.Working()()
	err := s.b.Dirs().Link(r.Context(), r.Header.Get(CapHeader), r.Header.Get(PathHeader))
	s.reply(w, struct{}{}, err)
}

func (s *Server) share(w http.ResponseWriter, r *http.Request) {
	as := r.URL.Query().Get("as")
	switch as {
	case "":
		as = "read"
	case "read", "verify", "write":
	default:
		s.fail(w, kind.New(kind.Usage, fmt.Sprintf("api: share as %q: read, verify or write", as)))
		return
	}
	if e := r.URL.Query().Get("expire"); e != "" {
		secs, err := strconv.ParseInt(e, 10, 64)
		if err != nil || secs < 1 || as != "read" {
			s.fail(w, kind.New(kind.Usage, "api: share: expire takes seconds ≥ 1, for a read capability"))
			return
		}
		defer s.b.Working()()
		c, err := s.b.Dirs().ShareExpiring(r.Context(), r.Header.Get(PathHeader), time.Duration(secs)*time.Second)
		s.reply(w, CapResult{Cap: c}, err)
		return
	}
	c, err := s.b.Dirs().Share(r.Context(), r.Header.Get(PathHeader), as)
	s.reply(w, CapResult{Cap: c}, err)
}

// treeProgress adapts a tree's progress to the fd reports.
func treeProgress(progress func(bytes, files int64)) func(dirs.Progress) {
	return func(p dirs.Progress) { progress(p.Bytes, p.Files) }
}

// openRoot opens a directory handed over as an os.Root: every path the
// daemon then opens stays inside it.
func openRoot(f *os.File) (*os.Root, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return nil, kind.New(kind.Usage, "api: a tree transfer needs a directory")
	}
	return os.OpenRoot(fmt.Sprintf("/proc/self/fd/%d", f.Fd()))
}

func (s *Server) putTree(w http.ResponseWriter, r *http.Request) {
	defer s.b.Working()()
	if !wantsFD(r) {
		s.fail(w, errNeedFD)
		return
	}
	dest := r.Header.Get(PathHeader)
	s.upgrade(w, r, false, func(ctx context.Context, f *os.File, progress func(bytes, files int64)) (any, error) {
		root, err := openRoot(f)
		if err != nil {
			return nil, err
		}
		defer root.Close()
		return s.b.Dirs().PutTree(ctx, root, dest, engine.PutOptions{}, treeProgress(progress))
	})
}

func (s *Server) getTree(w http.ResponseWriter, r *http.Request) {
	defer s.b.Working()()
	if !wantsFD(r) {
		s.fail(w, errNeedFD)
		return
	}
	src := r.Header.Get(PathHeader)
	o := dirs.GetOptions{Force: r.URL.Query().Get("force") == "1", Umask: 0o022}
	if v := r.URL.Query().Get("umask"); v != "" {
		m, err := strconv.ParseUint(v, 8, 32)
		if err != nil || m > 0o777 {
			s.fail(w, kind.New(kind.Usage, fmt.Sprintf("api: umask %q: octal, at most 777", v)))
			return
		}
		o.Umask = uint32(m)
	}
	s.upgrade(w, r, true, func(ctx context.Context, f *os.File, progress func(bytes, files int64)) (any, error) {
		root, err := openRoot(f)
		if err != nil {
			return nil, err
		}
		defer root.Close()
		return s.b.Dirs().GetTree(ctx, src, root, o, treeProgress(progress))
	})
}

// fileMeta reads a put's mode and mtime (nanoseconds) parameters.
func fileMeta(q url.Values) (dirs.FileMeta, error) {
	var m dirs.FileMeta
	if v := q.Get("mode"); v != "" {
		n, err := strconv.ParseUint(v, 8, 32)
		if err != nil || n > 0o7777 {
			return m, kind.New(kind.Usage, fmt.Sprintf("api: mode %q: octal, at most 7777", v))
		}
		m.Mode = uint32(n)
	}
	if v := q.Get("mtime"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return m, kind.New(kind.Usage, fmt.Sprintf("api: mtime %q: nanoseconds since 1970", v))
		}
		m.MTime = n
	}
	return m, nil
}

// Client side.

// Mkdir makes a folder at path (empty: a new folder, whose write
// capability it returns).
func (c *Client) Mkdir(ctx context.Context, path string, parents bool) (string, error) {
	q := ""
	if parents {
		q = "?parents=1"
	}
	var res CapResult
	return res.Cap, c.postJSON(ctx, "/v1/mkdir"+q, map[string]string{PathHeader: path}, &res)
}

// List lists a folder.
func (c *Client) List(ctx context.Context, path string) ([]dirs.Entry, error) {
	var es []dirs.Entry
	return es, c.getJSON(ctx, "/v1/ls", map[string]string{PathHeader: path}, &es)
}

// Remove removes an entry (a folder only with recursive).
func (c *Client) Remove(ctx context.Context, path string, recursive bool) error {
	q := ""
	if recursive {
		q = "?recursive=1"
	}
	return c.postJSON(ctx, "/v1/rm"+q, map[string]string{PathHeader: path}, nil)
}

// Move moves an entry.
func (c *Client) Move(ctx context.Context, from, to string) error {
	return c.postJSON(ctx, "/v1/mv", map[string]string{PathHeader: from, ToHeader: to}, nil)
}

// Link puts a capability at path.
func (c *Client) Link(ctx context.Context, capText, path string) error {
	return c.postJSON(ctx, "/v1/ln", map[string]string{CapHeader: capText, PathHeader: path}, nil)
}

// Share returns a capability of path: as "read", "verify" or "write".
func (c *Client) Share(ctx context.Context, path, as string) (string, error) {
	var res CapResult
	return res.Cap, c.getJSON(ctx, "/v1/share?as="+url.QueryEscape(as), map[string]string{PathHeader: path}, &res)
}

// ShareExpiring returns the read capability of a copy of the file at path
// that expires d from now (dirs.Service.ShareExpiring).
func (c *Client) ShareExpiring(ctx context.Context, path string, d time.Duration) (string, error) {
	var res CapResult
	q := fmt.Sprintf("/v1/share?as=read&expire=%d", int64(d/time.Second))
	return res.Cap, c.getJSON(ctx, q, map[string]string{PathHeader: path}, &res)
}

// PutTree has the daemon store the tree under the directory dir at path.
func (c *Client) PutTree(ctx context.Context, dir *os.File, path string, progress func(bytes, files int64)) (dirs.TreeResult, error) {
	var res dirs.TreeResult
	err := c.withFD(ctx, http.MethodPost, "/v1/put-tree", map[string]string{PathHeader: path}, dir, progress, &res)
	return res, err
}

// GetTree has the daemon write the folder at path into the directory dir.
func (c *Client) GetTree(ctx context.Context, path string, dir *os.File, o dirs.GetOptions, progress func(bytes, files int64)) (dirs.TreeResult, error) {
	q := "?umask=" + strconv.FormatUint(uint64(o.Umask), 8)
	if o.Force {
		q += "&force=1"
	}
	var res dirs.TreeResult
	err := c.withFD(ctx, http.MethodPost, "/v1/get-tree"+q, map[string]string{PathHeader: path}, dir, progress, &res)
	return res, err
}

func (c *Client) postJSON(ctx context.Context, path string, hdr map[string]string, v any) error {
	resp, err := c.do(ctx, http.MethodPost, path, hdr, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if v == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(v)
}
