package main

import (
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

// barSetter returns a callback that sets bar to a byte count, or nil.
func barSetter(bar *progressbar.ProgressBar) func(int64) {
	if bar == nil {
		return nil
	}
	return func(n int64) { _ = bar.Set64(n) }
}

// finish ends a bar, if there is one.
func finish(bar *progressbar.ProgressBar) {
	if bar != nil {
		_ = bar.Finish()
	}
}
