package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/umbra-store/umbra/internal/api"
	"github.com/umbra-store/umbra/internal/kind"
	"github.com/umbra-store/umbra/internal/testnet"
)

// TestAPIFileHandOverAndStreaming checks the daemon API's two ways to move a
// file: handing the daemon a descriptor (what the CLI does for files and
// pipes) and streaming through the socket (terminals, other clients). Both
// must store the bytes and read them back.
func TestAPIFileHandOverAndStreaming(t *testing.T) {
	cl := dialThreeNodes(t)
	ctx := context.Background()
	in, data := randomFile(t, 7, 5<<20+123)
	opts := api.PutOptions{Shards: "2+1"}

	f, err := os.Open(in)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	viaFD, err := cl.PutFile(ctx, f, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	streamed, err := cl.Put(ctx, bytes.NewReader(data), opts)
	if err != nil {
		t.Fatal(err)
	}
	// (The capabilities may differ: the root records which peer took each
	// shard, and concurrent placement may pair shards and peers apart.)
	if viaFD.Size != uint64(len(data)) || streamed.Size != viaFD.Size {
		t.Fatalf("hand-over put %+v, streamed put %+v: sizes disagree", viaFD, streamed)
	}

	out, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	var last int64
	if _, err := cl.GetTo(ctx, viaFD.Cap, out, func(n int64) { last = n }); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(out.Name())
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("get into a handed-over file: %d bytes, differs (%v)", len(got), err)
	}
	if last > int64(len(data)) {
		t.Fatalf("progress reported %d of %d bytes", last, len(data))
	}
	var buf bytes.Buffer
	if err := cl.Get(ctx, streamed.Cap, &buf); err != nil || !bytes.Equal(buf.Bytes(), data) {
		t.Fatalf("streamed get: %d bytes, differs (%v)", buf.Len(), err)
	}

	// Refusals come before the hand-over, as ordinary answers.
	var ae *api.Error
	if _, err := cl.GetTo(ctx, "umbra:fr:nonsense", out, nil); !errors.As(err, &ae) || kind.Of(ae) != kind.Usage {
		t.Fatalf("get with a malformed capability: %v", err)
	}
	if _, err := cl.PutFile(ctx, f, api.PutOptions{Shards: "2+x"}, nil); !errors.As(err, &ae) || kind.Of(ae) != kind.Usage {
		t.Fatalf("put with malformed shards: %v", err)
	}
}

// TestAPIHandOverCancel cancels a put reading from a pipe that never ends:
// the call returns, and the daemon stops reading and keeps serving.
func TestAPIHandOverCancel(t *testing.T) {
	cl := dialThreeNodes(t)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	writeDone := make(chan error, 1)
	go func() { // an endless source, until the daemon stops reading
		_, err := pw.ReadFrom(infinite{})
		pw.Close()
		writeDone <- err
	}()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err = cl.PutFile(ctx, pr, api.PutOptions{Shards: "2+1"}, func(n int64) {
		if n > 0 {
			cancel() // the daemon has stored something: stop now
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled put returned %v", err)
	}
	// Our copy of the read end goes too: with the daemon's gone, the
	// writer ends with a broken pipe. If the daemon kept reading, it never
	// would.
	pr.Close()
	if err := <-writeDone; err == nil {
		t.Fatal("the endless writer ended without an error")
	}
	if _, err := cl.Status(context.Background()); err != nil {
		t.Fatalf("daemon after a cancelled put: %v", err)
	}
}

// infinite reads as an endless run of bytes that differ per call.
type infinite struct{}

func (infinite) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(i*7 + len(p))
	}
	return len(p), nil
}

// TestAPIHandOverCancelGet cancels a get writing into a pipe nobody reads:
// the daemon lets go of the pipe (the reader then sees its end) before the
// whole file is written, and keeps serving.
func TestAPIHandOverCancelGet(t *testing.T) {
	cl := dialThreeNodes(t)
	in, data := randomFile(t, 9, 32<<20)
	f, err := os.Open(in)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := cl.PutFile(context.Background(), f, api.PutOptions{Shards: "2+1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first := make([]byte, 64<<10)
	go func() {
		// The daemon is writing (the pipe holds far less than the file):
		// cancel while it is blocked on the full pipe.
		if _, err := io.ReadFull(pr, first); err == nil {
			cancel()
		}
	}()
	_, err = cl.GetTo(ctx, res.Cap, pw, nil)
	pw.Close()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled get returned %v", err)
	}
	rest, err := io.ReadAll(pr) // ends only once the daemon closed its end
	if err != nil {
		t.Fatal(err)
	}
	got := append(first, rest...)
	if len(got) >= len(data) || !bytes.Equal(got, data[:len(got)]) {
		t.Fatalf("read %d of %d bytes after cancelling: want a true prefix", len(got), len(data))
	}
	if _, err := cl.Status(context.Background()); err != nil {
		t.Fatalf("daemon after a cancelled get: %v", err)
	}
}

// TestGetIntoClosedPipeIsQuiet: `umbra get CAP -o - | head -c 10` ends like
// any Unix tool whose reader went away: exit 141, nothing on stderr.
func TestGetIntoClosedPipeIsQuiet(t *testing.T) {
	st := up(t, testnet.Options{Nodes: 3})
	in, _ := randomFile(t, 10, 16<<20)
	r := runArgs(t, st.Nodes[0].UmbraPath, nil, "put", "--shards", "2+1", in)
	if r.code != 0 {
		t.Fatalf("put: %s", r.stderr)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(umbraBin, "get", strings.TrimSpace(r.stdout), "-o", "-")
	cmd.Env = append(os.Environ(), "UMBRA_PATH="+st.Nodes[0].UmbraPath)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = pw, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	head := make([]byte, 10)
	if _, err := io.ReadFull(pr, head); err != nil {
		t.Fatal(err)
	}
	pr.Close()
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 141 || stderr.Len() != 0 {
		t.Fatalf("get into a closed pipe: %v, stderr %q; want exit 141 and nothing said", err, stderr.String())
	}
}

// dialThreeNodes starts a 3-node testnet and returns a client of node 0.
func dialThreeNodes(t *testing.T) *api.Client {
	t.Helper()
	st := up(t, testnet.Options{Nodes: 3})
	cl, err := api.Dial(st.Nodes[0].UmbraPath)
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// TestAPIRangeParseErrors: a get whose offset or length is not a number is
// a usage error (400), not an empty 200.
func TestAPIRangeParseErrors(t *testing.T) {
	st := up(t, testnet.Options{Nodes: 1})
	capText := strings.TrimSpace(mustRunArgs(t, st.Nodes[0].UmbraPath, "put", "--allow-fewer-peers", writeFile(t, []byte("ranged"))))
	sock := filepath.Join(st.Nodes[0].UmbraPath, api.SocketName)
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
	for _, q := range []string{"length=abc", "offset=1x", "offset=2&length=-"} {
		req, _ := http.NewRequest(http.MethodGet, "http://umbra/v1/get?"+q, nil)
		req.Header.Set(api.CapHeader, capText)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var b api.ErrorBody
		json.NewDecoder(resp.Body).Decode(&b)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || b.Kind != kind.Usage.String() {
			t.Fatalf("%s: %s %+v", q, resp.Status, b)
		}
	}
	req, _ := http.NewRequest(http.MethodGet, "http://umbra/v1/get?offset=1&length=3", nil)
	req.Header.Set(api.CapHeader, capText)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(got) != "ang" {
		t.Fatalf("a good range: %s %q", resp.Status, got)
	}
}
