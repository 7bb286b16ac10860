package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"

	"github.com/umbra-store/umbra/internal/kind"
	"github.com/umbra-store/umbra/internal/network"
	"github.com/umbra-store/umbra/keyring"
)

// check answers POST /v1/check?verify=1&repair=1 for the file the
// Umbra-Capability header names (a read or verify capability, or a path).
func (s *Server) check(w http.ResponseWriter, r *http.Request) {
	defer s.b.Working()()
	m := s.b.Maintainer()
	if m == nil {
		s.fail(w, kind.New(kind.Usage, "api: check and repair need the network (a daemon)"))
		return
	}
	q := r.URL.Query()
	text := r.Header.Get(CapHeader)
	run := func(vc keyring.VerifyCap) (network.Report, error) {
		if q.Get("repair") == "1" {
			return m.Repair(r.Context(), vc)
		}
		return m.Check(r.Context(), vc, q.Get("verify") == "1")
	}
	if q.Get("deep") == "1" {
		roots, err := s.b.Dirs().Roots(r.Context(), text)
		if err != nil {
			s.fail(w, err)
			return
		}
		rep, err := Deep(roots, run)
		s.reply(w, rep, err)
		return
	}
	vc, inline, err := s.verifyCapOf(r.Context(), text)
	if err != nil {
		s.fail(w, err)
		return
	}
	if inline {
		s.reply(w, network.Report{Status: "healthy"}, nil) // stored in its folder's snapshot
		return
	}
	rep, err := run(vc)
	s.reply(w, rep, err)
}

// Deep checks (or repairs) each root of a tree with run and sums up.
func Deep(roots []keyring.VerifyCap, run func(keyring.VerifyCap) (network.Report, error)) (network.Report, error) {
	sum := network.Report{Status: "healthy"}
	for _, vc := range roots {
		rep, err := run(vc)
		if err != nil {
			return sum, err
		}
		sum.Merge(rep)
	}
	return sum, nil
}

// verifyCapOf returns the verify capability of a file named by a file
// read or verify capability, or by a path; inline: a file stored in its
// folder's snapshot, with no blocks of its own.
func (s *Server) verifyCapOf(ctx context.Context, text string) (vc keyring.VerifyCap, inline bool, err error) {
	if strings.HasPrefix(text, "umbra:") && !strings.Contains(text, "/") {
		c, err := keyring.ParseCap(text)
		if err != nil {
			return vc, false, err
		}
		switch c := c.(type) {
		case keyring.ReadCap:
			return c.Verify(), false, nil
		case keyring.VerifyCap:
			return c, false, nil
		}
		return vc, false, kind.New(kind.Usage, "api: a folder: check and repair it with --deep")
	}
	f, err := s.b.Dirs().OpenFile(ctx, text)
	if err != nil {
		return vc, false, err
	}
	if f.Cap == nil {
		return vc, true, nil
	}
	return f.Cap.Verify(), false, nil
}

func (s *Server) maintain(w http.ResponseWriter, r *http.Request) {
	defer s.b.Working()()
	st, err := s.b.Maintain(r.Context())
	s.reply(w, st, err)
}

// Maintain has the daemon run its maintenance now.
func (c *Client) Maintain(ctx context.Context) (MaintStatus, error) {
	resp, err := c.do(ctx, http.MethodPost, "/v1/maintain", nil, nil)
	if err != nil {
		return MaintStatus{}, err
	}
	defer resp.Body.Close()
	var st MaintStatus
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// Check has the daemon check (or with repair, repair) the file capText
// names.
func (c *Client) Check(ctx context.Context, capText string, verify, repair, deep bool) (network.Report, error) {
	q := url.Values{}
	if repair {
		q.Set("repair", "1")
	}
	if verify {
		q.Set("verify", "1")
	}
	if deep {
		q.Set("deep", "1")
	}
	path := "/v1/check?" + q.Encode()
	resp, err := c.do(ctx, http.MethodPost, path, map[string]string{CapHeader: capText}, nil)
	if err != nil {
		return network.Report{}, err
	}
	defer resp.Body.Close()
	var rep network.Report
	return rep, json.NewDecoder(resp.Body).Decode(&rep)
}
