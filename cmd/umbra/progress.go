package main

import (
	"io"
	"os"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// newProgress returns a progress bar on stderr when stderr is a terminal, or
// nil. total < 0 means unknown.
func newProgress(total int64, what string) *progressbar.ProgressBar {
	if !term.IsTerminal(int(os.Stderr.Fd())) {
		return nil
	}
	return progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(os.Stderr),
		progressbar.OptionSetDescription(what),
		progressbar.OptionShowBytes(true),
		progressbar.OptionThrottle(100e6),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionSetWidth(30),
	)
}

// progressWriter counts bytes written through it into a bar.
type progressWriter struct {
	w   io.Writer
	bar *progressbar.ProgressBar
}

func (p progressWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	if p.bar != nil {
		_ = p.bar.Add(n)
	}
	return n, err
}

// barSetter returns a callback that sets bar to a byte count, or nil.
func barSetter(bar *progressbar.ProgressBar) func(int64) {
	if bar == nil {
		return nil
	}
	return func(n int64) { _ = bar.Set64(n) }
}
