package process

import (
	"runtime"
	"sync"
)

// SpareThreads is how many idle OS threads the agent keeps ready beside
// the ones it has.
//
// A sandbox's pids limit counts threads too. When a fork storm (or a
// `make -j` too wide) fills it, creating a thread fails, and the Go
// runtime treats that as fatal ("runtime: failed to create new OS thread
// … fatal error: newosproc"): the agent, the sandbox's init, died, and
// the whole sandbox with it, where a shell's fork merely fails and the
// user recovers. The runtime needs a new thread whenever a goroutine
// blocks in a system call and every thread it has is busy (the signal
// loop waking for each SIGCHLD of the storm's orphans did it), and it
// takes an idle one first: it never lets an idle thread go. Four spares
// cover the agent's usual blocking calls at once (a fork, a file read, a
// wait, the signal loop). What they cost was not measured apart from the
// noise: BenchmarkIdleMemory's cgroup MB per idle sandbox was 1.82
// before, 1.71 and 1.98 after (eight spares made it 2.1); in the kernel
// a thread is a 16 KiB stack and a 5.9 KiB task_struct here (slabinfo).
const SpareThreads = 4

// spareThreads makes the Go runtime start n OS threads more and leave
// them idle: n goroutines each lock a thread of their own and wait until
// all n run (so each has a distinct thread, the runtime starting new ones
// for the rest meanwhile), then unlock and end, which parks their threads
// on the runtime's idle list.
func spareThreads(n int) {
	var ready, done sync.WaitGroup
	release := make(chan struct{})
	ready.Add(n)
	done.Add(n)
	for range n {
		go func() {
			defer done.Done()
			runtime.LockOSThread()
			ready.Done()
			<-release
			runtime.UnlockOSThread()
		}()
	}
	ready.Wait()
	close(release)
	done.Wait()
}
