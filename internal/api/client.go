package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/umbra-store/umbra/internal/engine"
)

// ErrNoDaemon is returned by Dial when no daemon answers for the node.
var ErrNoDaemon = errors.New("api: no umbra daemon is running for this node")

// Client talks to a daemon over its socket.
type Client struct {
	hc   *http.Client
	path string
}

// Dial connects to the daemon of the node directory dir.
func Dial(dir string) (*Client, error) {
	path := filepath.Join(dir, SocketName)
	c, err := net.Dial("unix", path)
	if err != nil {
		return nil, fmt.Errorf("%w (%s)", ErrNoDaemon, dir)
	}
	c.Close()
	// Several idle connections: a mount reads chunks in parallel.
	tr := &http.Transport{MaxIdleConnsPerHost: 32, DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}
	return &Client{hc: &http.Client{Transport: tr}, path: path}, nil
}

func decodeErr(resp *http.Response) error {
	var b ErrorBody
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(raw, &b) != nil || b.Error == "" {
		return newError("", fmt.Sprintf("daemon answered %s", resp.Status))
	}
	return newError(b.Kind, b.Error)
}

func (c *Client) do(ctx context.Context, method, path string, hdr map[string]string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://umbra"+path, body)
	if err != nil {
		return nil, err
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("api: daemon: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, decodeErr(resp)
	}
	return resp, nil
}

func (c *Client) getJSON(ctx context.Context, path string, hdr map[string]string, v any) error {
	resp, err := c.do(ctx, http.MethodGet, path, hdr, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}

// PutOptions are a put's query parameters.
type PutOptions struct {
	Shards          string
	RandomKey       bool
	Name            string
	AllowFewerPeers bool
	// Path, if set, is the folder path to store the file at (into it, as
	// Name, if it is a folder), with Mode and MTime (0: 0644, now).
	Path  string
	Mode  uint32
	MTime int64
	// Expire, if set, makes the file self-destruct: a copy under random
	// keys whose leases end this long from now and are never renewed.
	Expire time.Duration
}

// SelfDestruct returns the engine options of a put that expires after d
// (0: none): random keys, so that the copy shares no block with a lasting
// one, and leases ending then.
func SelfDestruct(o engine.PutOptions, d time.Duration) engine.PutOptions {
	if d > 0 {
		o.RandomKey, o.Expiry = true, uint64(time.Now().Add(d).Unix())
	}
	return o
}

func (o PutOptions) header() map[string]string {
	if o.Path == "" {
		return nil
	}
	return map[string]string{PathHeader: o.Path}
}

func (o PutOptions) query() string {
	q := url.Values{}
	if o.Shards != "" {
		q.Set("shards", o.Shards)
	}
	if o.RandomKey {
		q.Set("random-key", "1")
	}
	if o.Name != "" {
		q.Set("name", o.Name)
	}
	if o.AllowFewerPeers {
		q.Set("allow-fewer-peers", "1")
	}
	if o.Mode != 0 {
		q.Set("mode", strconv.FormatUint(uint64(o.Mode), 8))
	}
	if o.MTime != 0 {
		q.Set("mtime", strconv.FormatInt(o.MTime, 10))
	}
	if o.Expire > 0 {
		q.Set("expire", strconv.FormatInt(int64(o.Expire/time.Second), 10))
	}
	return q.Encode()
}

// Put streams r to the daemon and returns the result.
func (c *Client) Put(ctx context.Context, r io.Reader, o PutOptions) (PutResult, error) {
	resp, err := c.do(ctx, http.MethodPost, "/v1/put?"+o.query(), o.header(), io.NopCloser(r))
	if err != nil {
		return PutResult{}, err
	}
	defer resp.Body.Close()
	var res PutResult
	return res, json.NewDecoder(resp.Body).Decode(&res)
}

// Stat returns what the file's root says.
func (c *Client) Stat(ctx context.Context, capText string) (Stat, error) {
	var st Stat
	return st, c.getJSON(ctx, "/v1/stat", map[string]string{CapHeader: capText}, &st)
}

// Get streams the file to w. An error after the first byte is reported from
// the response trailer.
func (c *Client) Get(ctx context.Context, capText string, w io.Writer) error {
	return c.GetRange(ctx, capText, 0, -1, w)
}

// GetRange streams length bytes of the file from off (length -1: to the
// end) to w.
func (c *Client) GetRange(ctx context.Context, capText string, off, length int64, w io.Writer) error {
	path := "/v1/get"
	if off != 0 || length >= 0 {
		path += fmt.Sprintf("?offset=%d&length=%d", off, length)
	}
	resp, err := c.do(ctx, http.MethodGet, path, map[string]string{CapHeader: capText}, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(w, resp.Body); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("api: get: %w", err)
	}
	if t := resp.Trailer.Get(ErrorHeader); t != "" {
		var b ErrorBody
		if json.Unmarshal([]byte(t), &b) == nil {
			return newError(b.Kind, b.Error)
		}
		return newError("", strings.TrimSpace(t))
	}
	return nil
}

// Status returns the node's status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var st Status
	return st, c.getJSON(ctx, "/v1/status", nil, &st)
}

// Peers lists connected peers.
func (c *Client) Peers(ctx context.Context) ([]Peer, error) {
	var ps []Peer
	return ps, c.getJSON(ctx, "/v1/peers", nil, &ps)
}
