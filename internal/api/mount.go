package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/umbra-store/umbra/internal/kind"
)

// Mount endpoints: the daemon serves its user's drives itself (see
// docs/architecture.md, "FUSE").
//
//	POST /v1/mount    {"ref","dir"} → lines: {"status"} once mounted, then {"done"} or {"error"} when it ends
//	POST /v1/unmount  {"dir"}       → {} once unmounted, everything written published
//
// A mount lasts while its request does: a client that goes away (its
// process killed) unmounts it.

// MountRequest asks for a mount of Ref (a capability or ALIAS:path) on
// Dir (an absolute path).
type MountRequest struct {
	Ref string `json:"ref,omitempty"`
	Dir string `json:"dir"`
}

// MountStatus is a mount's state once mounted.
type MountStatus struct {
	Dir      string `json:"dir"`
	Kind     string `json:"kind"` // "folder" or "file"
	ReadOnly bool   `json:"read_only"`
	PID      int    `json:"pid"`               // the process serving it
	Cleared  bool   `json:"cleared,omitempty"` // a stale mount was cleared first
}

// mountLine is one line of a mount's answer.
type mountLine struct {
	Status *MountStatus `json:"status,omitempty"`
	Done   bool         `json:"done,omitempty"`
	Error  *ErrorBody   `json:"error,omitempty"`
}

// maxMountBody bounds a mount request (a capability and a path).
const maxMountBody = 64 << 10

func readMountRequest(w http.ResponseWriter, r *http.Request) (MountRequest, error) {
	// Read to the end: the server notices a client that goes away only
	// once the body is consumed.
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxMountBody))
	var req MountRequest
	if err == nil {
		err = json.Unmarshal(raw, &req)
	}
	if err != nil {
		return req, kind.New(kind.Usage, "api: mount: "+err.Error())
	}
	return req, nil
}

func (s *Server) mount(w http.ResponseWriter, r *http.Request) {
	req, err := readMountRequest(w, r)
	if err != nil {
		s.fail(w, err)
		return
	}
	enc := json.NewEncoder(w)
	started := false
	err = s.b.Mount(r.Context(), req, func(st MountStatus) {
		started = true
		w.Header().Set("Content-Type", "application/x-ndjson")
		_ = enc.Encode(mountLine{Status: &st})
		_ = http.NewResponseController(w).Flush()
	})
	if !started {
		s.fail(w, err)
		return
	}
	end := mountLine{Done: true}
	if err != nil {
		b := body(err)
		end = mountLine{Error: &b}
	}
	_ = enc.Encode(end)
}

func (s *Server) unmount(w http.ResponseWriter, r *http.Request) {
	req, err := readMountRequest(w, r)
	if err == nil {
		err = s.b.Unmount(r.Context(), req.Dir)
	}
	s.reply(w, struct{}{}, err)
}

// Mount asks the daemon to mount req.Ref on req.Dir and returns once it
// is mounted, with wait, which returns when the mount ends (the error it
// ended with) and must be called. Cancelling ctx unmounts.
func (c *Client) Mount(ctx context.Context, req MountRequest) (MountStatus, func() error, error) {
	raw, err := json.Marshal(req)
	if err != nil {
		return MountStatus{}, nil, err
	}
	resp, err := c.do(ctx, http.MethodPost, "/v1/mount", nil, bytes.NewReader(raw))
	if err != nil {
		return MountStatus{}, nil, err
	}
	dec := json.NewDecoder(resp.Body)
	var first mountLine
	if err := dec.Decode(&first); err != nil || first.Status == nil {
		resp.Body.Close()
		return MountStatus{}, nil, fmt.Errorf("api: mount: the daemon did not answer a status (%v)", err)
	}
	wait := func() error {
		defer resp.Body.Close()
		var end mountLine
		if err := dec.Decode(&end); err != nil {
			return fmt.Errorf("api: the daemon ended the mount: %w", err)
		}
		if end.Error != nil {
			return newError(end.Error.Kind, end.Error.Error)
		}
		return nil
	}
	return *first.Status, wait, nil
}

// Unmount asks the daemon to end its mount on dir (kind.NotFound: it has
// none there).
func (c *Client) Unmount(ctx context.Context, dir string) error {
	raw, err := json.Marshal(MountRequest{Dir: dir})
	if err != nil {
		return err
	}
	resp, err := c.do(ctx, http.MethodPost, "/v1/unmount", nil, bytes.NewReader(raw))
	if err != nil {
		return err
	}
	return resp.Body.Close()
}
