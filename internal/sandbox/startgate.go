package sandbox

import (
	"context"
	"runtime"
	"sync"
	"time"
)

// startGate bounds how many foreground commands host-wide are young
// (started less than hold ago and not yet exited); the others wait for a
// slot in order of arrival. Under load the kernel serves sandboxes
// unfairly: all of them sit in one parent cgroup that weighs like a
// single task beside the server's and clients' threads, and a starved
// sandbox stays starved for hundreds of milliseconds while others finish
// in a few (docs/BENCHMARKS.md, "The tail under load"). Waiting here in
// order instead, a command then runs with few others beside it: ExecLoad's
// p99 from ~250 ms to ~65 ms at 7–10% less throughput. Below 2 young
// commands per core nobody waits. A long command holds its slot for hold only: it does not
// keep others from starting.
type startGate struct {
	size int           // slots; 0: gatePerCPU per core
	hold time.Duration // 0: gateHold

	once  sync.Once
	slots chan struct{}
}

const (
	// gatePerCPU is how many young commands may run per core: 1 left a
	// core idle while the server worked (540 exec/s, p99 105 ms), 3 let
	// the unfairness back in (p99 210 ms), 2 gave p99 65–73 ms.
	gatePerCPU = 2
	// gateHold is how long a command counts as young: `echo hi` takes
	// ~3 ms of CPU, and 20 ms outlasts it under load.
	gateHold = 20 * time.Millisecond
)

// acquire waits for a slot (or the end of ctx) and returns the function
// that frees it, which may be called more than once; the slot frees itself
// after hold.
func (g *startGate) acquire(ctx context.Context) (func(), error) {
	g.once.Do(func() {
		if g.size == 0 {
			g.size = gatePerCPU * runtime.NumCPU()
		}
		if g.hold == 0 {
			g.hold = gateHold
		}
		g.slots = make(chan struct{}, g.size)
	})
	select {
	case g.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	var done sync.Once
	free := func() { done.Do(func() { <-g.slots }) }
	t := time.AfterFunc(g.hold, free)
	return func() { t.Stop(); free() }, nil
}
