package process

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"time"

	"github.com/chaserhq/chaser/internal/errdefs"
)

// User is who a process runs as. Exec and terminals take the same one,
// resolved by the agent (the image's USER unless a request names another).
type User struct {
	// Name names the user in messages ("dev", or "1000" without a
	// passwd entry).
	Name string
	// Credential is nil for the agent's own identity (root).
	Credential *syscall.Credential
}

func (u User) String() string {
	if u.Name == "" {
		return "root"
	}
	return u.Name
}

// startError turns a failed fork/exec into an error that names the cause:
// Go reports every failure of the child (chdir, setuid, execve) as
// "fork/exec ARGV0: ERRNO". What the agent could not check beforehand —
// a missing interpreter of a script, a binary the user may not execute —
// is the caller's problem (ErrInvalidArgument), the rest is internal.
func startError(err error, argv0, path string, u User) error {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return fmt.Errorf("start %q: %w", argv0, err)
	}
	switch errno {
	case syscall.EAGAIN:
		// Slots free as processes end: a second is a fair first wait.
		return errdefs.WithRetryAfter(errdefs.New(errdefs.ErrResourceExhausted, "no free process slots in this sandbox: its processes reached the pids limit; wait for some to end or kill them, then retry"), time.Second)
	case syscall.E2BIG:
		return errdefs.New(errdefs.ErrInvalidArgument, "the command and its environment are over the kernel's argument limit; send a long script on stdin or as a file")
	case syscall.ENOMEM:
		return errdefs.New(errdefs.ErrResourceExhausted, "no memory left in this sandbox to start the command")
	case syscall.ENOENT:
		if !strings.Contains(path, "/") {
			return errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("%s: not found on the PATH of the sandbox", argv0))
		}
		return errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("%s: no such file in the sandbox (or the interpreter its #! line names is missing)", path))
	case syscall.EACCES, syscall.EPERM:
		return errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("%s: permission denied for user %s (not executable by it, or a directory on the way is closed to it)", path, u))
	case syscall.ENOEXEC:
		return errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("%s: not an executable this sandbox can run", path))
	case syscall.ENOTDIR, syscall.EISDIR:
		return errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("%s: not an executable file", path))
	}
	return fmt.Errorf("start %q: %w", argv0, err)
}
