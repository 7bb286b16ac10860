package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"

	"golang.org/x/sync/errgroup"

	"github.com/umbra-store/umbra/internal/config"
	"github.com/umbra-store/umbra/internal/engine"
	"github.com/umbra-store/umbra/internal/kind"
)

// Limits of one put-batch request: small files, each read whole before
// its put, engine.BatchPuts at once.
const (
	MaxBatchFiles = 256
	MaxBatchFile  = 1 << 20
	MaxBatchBytes = 32 << 20
)

// BatchResult is the answer to a put-batch: each file's capability and
// size, in the order sent, all durable.
type BatchResult struct {
	Files    []PutResult `json:"files"`
	Warnings []string    `json:"warnings,omitempty"`
}

// putBatch stores the files of a multipart body (one part each) as files
// of their own, with one durability point for all of them.
func (s *Server) putBatch(w http.ResponseWriter, r *http.Request) {
	defer s.b.Working()()
	res, err := s.runBatch(r.Context(), r)
	s.reply(w, res, err)
}

func (s *Server) runBatch(ctx context.Context, r *http.Request) (BatchResult, error) {
	k, m, err := config.ParseShards(s.b.DefaultShards())
	if err != nil {
		return BatchResult{}, err
	}
	mr, err := r.MultipartReader()
	if err != nil {
		return BatchResult{}, kind.New(kind.Usage, "api: put-batch: "+err.Error())
	}
	batch, err := s.b.Engine().NewBatch(engine.PutOptions{K: k, M: m})
	if err != nil {
		return BatchResult{}, err
	}
	files := make([]PutResult, MaxBatchFiles)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(engine.BatchPuts)
	n, total := 0, 0
	for ; gctx.Err() == nil; n++ {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err == nil && n == MaxBatchFiles {
			err = fmt.Errorf("more than %d files", MaxBatchFiles)
		}
		var data []byte
		if err == nil {
			data, err = io.ReadAll(io.LimitReader(part, MaxBatchFile+1))
			total += len(data)
		}
		if err == nil && (len(data) > MaxBatchFile || total > MaxBatchBytes) {
			err = fmt.Errorf("a file over %d bytes or a batch over %d", MaxBatchFile, MaxBatchBytes)
		}
		if err != nil {
			_ = g.Wait()
			return BatchResult{}, kind.New(kind.Usage, "api: put-batch: "+err.Error())
		}
		i := n
		g.Go(func() error {
			res, err := batch.Put(gctx, bytes.NewReader(data), engine.PutOptions{})
			files[i] = PutResult{Cap: res.Cap.Encode(), Size: res.Size, Chunks: res.Chunks}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return BatchResult{}, err
	}
	warnings, err := batch.Flush(ctx)
	if err != nil {
		return BatchResult{}, err
	}
	return BatchResult{Files: files[:n], Warnings: warnings}, nil
}

// PutBatch stores each file as a file of its own (each at most
// MaxBatchFile bytes, MaxBatchFiles and MaxBatchBytes in all) and returns
// their capabilities once all are durable.
func (c *Client) PutBatch(ctx context.Context, files []*io.SectionReader) ([]PutResult, error) {
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		for _, f := range files {
			part, err := mw.CreateFormFile("file", "f")
			if err == nil {
				_, err = io.Copy(part, io.NewSectionReader(f, 0, f.Size()))
			}
			if err != nil {
				pw.CloseWithError(err)
				return
			}
		}
		pw.CloseWithError(mw.Close())
	}()
	defer pr.Close()
	resp, err := c.do(ctx, http.MethodPost, "/v1/put-batch", map[string]string{"Content-Type": mw.FormDataContentType()}, pr)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var res BatchResult
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		return nil, err
	}
	if len(res.Files) != len(files) {
		return nil, fmt.Errorf("api: put-batch: %d files answered for %d sent", len(res.Files), len(files))
	}
	return res.Files, nil
}
