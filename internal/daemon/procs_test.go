package daemon

import (
	"runtime"
	"testing"
	"time"
)

func TestProcsRaisedWhileWorking(t *testing.T) {
	all := runtime.GOMAXPROCS(0)
	if all < 2 {
		t.Skip("needs GOMAXPROCS 2 or more to tell serving from working")
	}
	defer runtime.GOMAXPROCS(all)
	p := newProcs(1)
	var lower []func()
	p.after = func(_ time.Duration, f func()) { lower = append(lower, f) }
	if got := runtime.GOMAXPROCS(0); got != 1 {
		t.Fatalf("serving with %d Ps, want 1", got)
	}
	end1 := p.begin()
	end2 := p.begin()
	if got := runtime.GOMAXPROCS(0); got != all {
		t.Fatalf("working with %d Ps, want %d", got, all)
	}
	end1()
	end1() // ending twice counts once
	if got := runtime.GOMAXPROCS(0); got != all {
		t.Fatalf("one of two operations ended: %d Ps, want %d", got, all)
	}
	end2()
	if got := runtime.GOMAXPROCS(0); got != all || len(lower) != 1 {
		t.Fatalf("just ended: %d Ps (want %d until idle a while), %d lowerings pending", got, all, len(lower))
	}
	end3 := p.begin() // a new operation before the lowering ran
	lower[0]()
	if got := runtime.GOMAXPROCS(0); got != all {
		t.Fatalf("lowered while working: %d Ps", got)
	}
	end3()
	lower[1]()
	if got := runtime.GOMAXPROCS(0); got != 1 {
		t.Fatalf("back to serving with %d Ps, want 1", got)
	}
}
