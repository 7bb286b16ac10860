package daemon

import (
	"runtime"
	"testing"
)

func TestProcsRaisedWhileWorking(t *testing.T) {
	if runtime.NumCPU() < 2 {
		t.Skip("needs 2 or more CPUs to tell serving from working")
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	p := newProcs(1)
	if got := runtime.GOMAXPROCS(0); got != 1 {
		t.Fatalf("serving with %d Ps, want 1", got)
	}
	end1 := p.begin()
	end2 := p.begin()
	if got := runtime.GOMAXPROCS(0); got != runtime.NumCPU() {
		t.Fatalf("working with %d Ps, want %d", got, runtime.NumCPU())
	}
	end1()
	end1() // ending twice counts once
	if got := runtime.GOMAXPROCS(0); got != runtime.NumCPU() {
		t.Fatalf("one of two operations ended: %d Ps, want %d", got, runtime.NumCPU())
	}
	end2()
	if got := runtime.GOMAXPROCS(0); got != 1 {
		t.Fatalf("back to serving with %d Ps, want 1", got)
	}
}
