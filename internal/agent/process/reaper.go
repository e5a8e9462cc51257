package process

import (
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// reaper collects the exit status of children.
//
// As PID 1 of a sandbox the agent inherits every orphan, so it must reap with
// wait4(-1). That would steal the status of the agent's own children from any
// exec.Cmd.Wait, so no code in the agent calls Wait: every child is started
// through reaper.start, which holds mu across fork and registration so the
// SIGCHLD loop (which takes mu too) can never reap a child before its waiter
// is known. Outside PID 1 (tests, debugging) each child is waited for by pid.
type reaper struct {
	mu      sync.Mutex
	waiters map[int]func(syscall.WaitStatus)
	global  bool
}

func newReaper(global bool) *reaper {
	r := &reaper{waiters: make(map[int]func(syscall.WaitStatus)), global: global}
	if global {
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGCHLD)
		go func() {
			for range ch {
				r.reapAll()
			}
		}()
	}
	return r
}

func (r *reaper) reapAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if pid <= 0 || err != nil {
			return
		}
		if f, ok := r.waiters[pid]; ok {
			delete(r.waiters, pid)
			go f(ws)
		}
		// Orphans re-parented to PID 1 are reaped and forgotten.
	}
}

// start runs fork (which returns the new pid) and arranges for onExit to be
// called once with the child's status.
func (r *reaper) start(fork func() (int, error), onExit func(syscall.WaitStatus)) (int, error) {
	r.mu.Lock()
	pid, err := fork()
	if err != nil {
		r.mu.Unlock()
		return 0, err
	}
	if r.global {
		r.waiters[pid] = onExit
		r.mu.Unlock()
		// A SIGCHLD that arrived while mu was held is still pending on ch.
		return pid, nil
	}
	r.mu.Unlock()
	go func() {
		var ws syscall.WaitStatus
		for {
			_, err := syscall.Wait4(pid, &ws, 0, nil)
			if err != syscall.EINTR {
				break
			}
		}
		onExit(ws)
	}()
	return pid, nil
}
