package daemon

import (
	"runtime"
	"sync"
	"time"
)

// procs sizes the Go scheduler: serve Ps while the daemon only serves peers,
// every core while a put or get of its own user runs. Serving is mostly
// waiting on sockets and needs little parallelism, while sealing and hashing
// a put spread over every core. Where several daemons share a machine (a
// testnet) each one serving with all cores costs much CPU in idle scheduler
// threads and cross-thread wake-ups: on the 2-core VM, 5 daemons storing
// 1 GiB used 15.1 core-seconds with GOMAXPROCS 2 and 9.8 with 1.
type procs struct {
	serve int // 0: leave GOMAXPROCS alone
	all   int // GOMAXPROCS at start: the user's setting, or what the runtime chose (CPU count, container limit)

	mu      sync.Mutex
	working int
	gen     uint64                      // bumped by every begin: a pending lowering checks it
	after   func(time.Duration, func()) // runs a lowering later (time.AfterFunc)
}

// idleDelay is how long every core stays in use after the last user
// operation ends: a mount's reads come as many short requests, and
// resizing the scheduler stops the world each time.
const idleDelay = 250 * time.Millisecond

func newProcs(serve int) *procs {
	p := &procs{all: runtime.GOMAXPROCS(0)}
	p.after = func(d time.Duration, f func()) { time.AfterFunc(d, f) }
	p.serve = min(serve, p.all)
	if p.serve > 0 && p.serve < p.all {
		runtime.GOMAXPROCS(p.serve)
	}
	return p
}

// begin marks a user operation running; the returned func ends it.
func (p *procs) begin() func() {
	if p.serve <= 0 || p.serve >= p.all {
		return func() {}
	}
	p.mu.Lock()
	p.gen++
	if p.working++; p.working == 1 && runtime.GOMAXPROCS(0) != p.all {
		runtime.GOMAXPROCS(p.all)
	}
	p.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			p.mu.Lock()
			defer p.mu.Unlock()
			if p.working--; p.working > 0 {
				return
			}
			gen := p.gen
			p.after(idleDelay, func() {
				p.mu.Lock()
				defer p.mu.Unlock()
				if p.working == 0 && p.gen == gen {
					runtime.GOMAXPROCS(p.serve)
				}
			})
		})
	}
}
