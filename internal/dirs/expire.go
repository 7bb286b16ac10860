package dirs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/umbra-store/umbra/internal/engine"
	"github.com/umbra-store/umbra/internal/kind"
)

// ShareExpiring stores a copy of the file at path under random keys whose
// leases all end d from now and are never renewed (nothing lists it for
// maintenance), and returns the copy's read capability: a link that stops
// working then, while the file itself stays. Folders: not yet.
func (s *Service) ShareExpiring(ctx context.Context, path string, d time.Duration) (string, error) {
	if d < time.Second {
		return "", kind.New(kind.Usage, "dirs: an expiring share lasts at least 1s")
	}
	f, err := s.OpenFile(ctx, path)
	if errors.Is(err, ErrIsDir) {
		return "", fmt.Errorf("%w: an expiring share of a folder is not built yet (share a file)", ErrIsDir)
	}
	if err != nil {
		return "", err
	}
	k, m := s.o.K, s.o.M
	o := engine.PutOptions{K: k, M: m, RandomKey: true, Name: f.Name, Expiry: uint64(s.o.Now().Add(d).Unix())}
	var r io.Reader
	if f.Cap == nil {
		r = bytes.NewReader(f.Inline)
	} else {
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(s.eng.Get(ctx, *f.Cap, pw)) }()
		defer pr.Close()
		r = pr
	}
	res, err := s.eng.Put(ctx, r, o)
	if err != nil {
		return "", fmt.Errorf("dirs: expiring copy: %w", err)
	}
	return res.Cap.Encode(), nil
}
