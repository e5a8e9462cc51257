package agent

import "golang.org/x/sys/unix"

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
