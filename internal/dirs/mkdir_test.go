package dirs

import (
	"context"
	"errors"
	"testing"

	"github.com/umbra-store/umbra/internal/format"
	"github.com/umbra-store/umbra/internal/network"
)

// publishHook runs hook (once) after the first record it publishes.
type publishHook struct {
	Records
	hook func()
}

func (p *publishHook) Publish(ctx context.Context, rec *format.Record) (network.Published, error) {
	res, err := p.Records.Publish(ctx, rec)
	if h := p.hook; h != nil {
		p.hook = nil
		h()
	}
	return res, err
}

// TestMkdirParentsExisting: mkdir -p of a folder that exists is no error
// (as mkdir -p); of a file there, it is ErrExists; without -p, ErrExists.
func TestMkdirParentsExisting(t *testing.T) {
	o := newOffline(t)
	ctx := context.Background()
	o.newFolder(t, "h")
	for range 2 {
		if _, err := o.svc.Mkdir(ctx, "h:a/b", true); err != nil {
			t.Fatalf("mkdir -p: %v", err)
		}
	}
	if _, err := o.svc.Mkdir(ctx, "h:a/b", false); !errors.Is(err, ErrExists) {
		t.Fatalf("mkdir of an existing folder: %v", err)
	}
	o.put(t, []byte("x"), "h:a/f")
	if _, err := o.svc.Mkdir(ctx, "h:a/f", true); !errors.Is(err, ErrExists) {
		t.Fatalf("mkdir -p over a file: %v", err)
	}
	if got := names(t, o, "h:a"); got != "b/ f" {
		t.Fatalf("h:a holds %q", got)
	}
}

// TestMkdirRacingWriter: another writer makes a folder of the same name
// between a mkdir's look and its entry. mkdir -p goes on into theirs (an
// intermediate folder, or the last with -p); a plain mkdir of that name
// is ErrExists.
func TestMkdirRacingWriter(t *testing.T) {
	for _, tc := range []struct {
		path    string
		parents bool
		want    error
		names   string // of h:x after
	}{
		{"h:x/y", true, nil, "y/"},
		{"h:x", true, nil, ""},
		{"h:x", false, ErrExists, ""},
	} {
		o := newOffline(t)
		ctx := context.Background()
		o.newFolder(t, "h")
		other := New(o.svc.eng, o.svc.recs, o.aliases, Options{})
		hooked := &publishHook{Records: o.svc.recs}
		ran := false
		hooked.hook = func() { // after this mkdir made its new folder x
			ran = true
			if _, err := other.Mkdir(ctx, "h:x", false); err != nil {
				t.Errorf("the other writer's mkdir: %v", err)
			}
		}
		s := New(o.svc.eng, hooked, o.aliases, Options{})
		_, err := s.Mkdir(ctx, tc.path, tc.parents)
		if !ran {
			t.Fatalf("%s: the other writer did not run", tc.path)
		}
		if !errors.Is(err, tc.want) && (err != nil || tc.want != nil) {
			t.Fatalf("mkdir %s (parents %v) against a racing writer: %v, want %v", tc.path, tc.parents, err, tc.want)
		}
		if got := names(t, o, "h:"); got != "x/" {
			t.Fatalf("h: holds %q", got)
		}
		if got := names(t, o, "h:x"); got != tc.names {
			t.Fatalf("h:x holds %q, want %q", got, tc.names)
		}
	}
}
