package agent

import (
	"golang.org/x/sys/unix"

	"github.com/chaserhq/chaser/internal/nice"
)

// harden puts the agent out of reach of the commands it runs. They share
// its uid (root in the sandbox), which is all ptrace(2) and the ptrace-
// guarded files of /proc/1 (fd/, mem, maps, environ, root, cwd) ask for
// of a dumpable process: without this any command could freeze the agent,
// read its memory, or write the host's agent.log through /proc/1/fd/2.
// A non-dumpable process can only be reached with CAP_SYS_PTRACE, which
// sandboxes do not have.
//
// The flag belongs to the process image, not its children: execve makes a
// command dumpable again (its credentials do not change there), so users
// still trace and debug their own processes (strace, gdb -p).
func harden() error {
	return unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
}

// resetNice puts every thread of the agent back at nice 0. The server
// runs at a raised priority (host.server_nice) and its children inherit
// it, through runc, down to the agent; the commands the agent starts
// inherit the agent's, and a sandbox's commands run at the host's
// default. Twice: a thread the runtime made meanwhile inherited the old
// value.
func resetNice() {
	for range 2 {
		_ = nice.Set(0, 0)
	}
}
