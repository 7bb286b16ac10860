package api

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/umbra-store/umbra/blockstore"
	"github.com/umbra-store/umbra/internal/dirs"
	"github.com/umbra-store/umbra/internal/engine"
	"github.com/umbra-store/umbra/internal/kind"
	"github.com/umbra-store/umbra/internal/network"
	"github.com/umbra-store/umbra/internal/randstream"
	"github.com/umbra-store/umbra/internal/xfer"
	"github.com/umbra-store/umbra/keyring"
)

// backend is an offline node's engine behind the API.
type backend struct{ eng *engine.Engine }

func (b backend) Engine() *engine.Engine                     { return b.eng }
func (b backend) Dirs() *dirs.Service                        { return nil }
func (b backend) DefaultShards() string                      { return "3+2" }
func (b backend) Status(ctx context.Context) (Status, error) { return Status{}, nil }
func (b backend) Peers(ctx context.Context) []Peer           { return nil }
func (b backend) Working() func()                            { return func() {} }
func (b backend) Maintainer() *network.Maintainer            { return nil }
func (b backend) Maintain(context.Context) (MaintStatus, error) {
	return MaintStatus{}, nil
}
func (b backend) Remember(keyring.VerifyCap) {}
func (b backend) Mount(context.Context, MountRequest, func(MountStatus)) error {
	return kind.New(kind.Usage, "no mounts here")
}
func (b backend) Unmount(context.Context, string) error { return kind.New(kind.NotFound, "none") }
func (b backend) Transfers() *xfer.Counters             { return nil }
func (b backend) GC(context.Context) (blockstore.GCStats, error) {
	return blockstore.GCStats{}, nil
}

func serve(t *testing.T) (*Client, *engine.Engine) {
	t.Helper()
	st, err := blockstore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	eng := engine.New(st, keyring.NewSecrets(keyring.GenerateKey()))
	dir := t.TempDir()
	srv, err := Listen(filepath.Join(dir, "api.sock"), backend{eng}, nil)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve()
	t.Cleanup(func() { srv.Close() })
	cl, err := Dial(dir)
	if err != nil {
		t.Fatal(err)
	}
	return cl, eng
}

// TestPutBatch: every file of a batch comes back under its own capability,
// in the order sent (files are stored concurrently).
func TestPutBatch(t *testing.T) {
	cl, eng := serve(t)
	ctx := context.Background()
	var want [][]byte
	var files []*io.SectionReader
	for i := range 40 {
		b := randstream.Bytes(byte(i), 5000+i*1500)
		want = append(want, b)
		files = append(files, io.NewSectionReader(bytes.NewReader(b), 0, int64(len(b))))
	}
	res, err := cl.PutBatch(ctx, files)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		c, err := keyring.ParseReadCap(r.Cap)
		if err != nil {
			t.Fatalf("file %d: %v", i, err)
		}
		var got bytes.Buffer
		if err := eng.Get(ctx, c, &got); err != nil || !bytes.Equal(got.Bytes(), want[i]) || r.Size != uint64(len(want[i])) {
			t.Fatalf("file %d reads back wrong (%v)", i, err)
		}
	}
}

// TestPutBatchLimits: a batch over its limits is refused as a usage error.
func TestPutBatchLimits(t *testing.T) {
	cl, _ := serve(t)
	ctx := context.Background()
	big := make([]byte, MaxBatchFile+1)
	one := []*io.SectionReader{io.NewSectionReader(bytes.NewReader(big), 0, int64(len(big)))}
	many := make([]*io.SectionReader, MaxBatchFiles+1)
	for i := range many {
		many[i] = io.NewSectionReader(bytes.NewReader([]byte("x")), 0, 1)
	}
	for name, fs := range map[string][]*io.SectionReader{"big file": one, "too many": many} {
		if _, err := cl.PutBatch(ctx, fs); kind.Of(err) != kind.Usage {
			t.Errorf("%s: %v, want a usage error", name, err)
		}
	}
	resp, err := cl.do(ctx, http.MethodPost, "/v1/put-batch", nil, bytes.NewReader([]byte("not multipart")))
	if err == nil {
		resp.Body.Close()
	}
	if kind.Of(err) != kind.Usage {
		t.Errorf("a body not multipart: %v", fmt.Sprint(err))
	}
}
