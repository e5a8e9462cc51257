package process

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"

	"github.com/chaserhq/chaser/internal/errdefs"
)

var signals = map[string]syscall.Signal{
	"HUP": syscall.SIGHUP, "INT": syscall.SIGINT, "QUIT": syscall.SIGQUIT,
	"KILL": syscall.SIGKILL, "TERM": syscall.SIGTERM, "USR1": syscall.SIGUSR1,
	"USR2": syscall.SIGUSR2, "ALRM": syscall.SIGALRM, "STOP": syscall.SIGSTOP,
	"CONT": syscall.SIGCONT, "TSTP": syscall.SIGTSTP, "WINCH": syscall.SIGWINCH,
	"PIPE": syscall.SIGPIPE, "ABRT": syscall.SIGABRT,
}

// ParseSignal accepts "TERM", "SIGTERM", "sigterm" or a number from 1 to 31.
// It returns errdefs.ErrInvalidArgument for anything else.
func ParseSignal(name string) (syscall.Signal, error) {
	n := strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(name)), "SIG")
	if s, ok := signals[n]; ok {
		return s, nil
	}
	if i, err := strconv.Atoi(n); err == nil && i >= 1 && i <= 31 {
		return syscall.Signal(i), nil
	}
	return 0, fmt.Errorf("unknown signal %q (use a name such as TERM, KILL, INT, HUP): %w", name, errdefs.ErrInvalidArgument)
}

// SignalName returns the short name of s ("TERM"), or its number.
func SignalName(s syscall.Signal) string {
	for n, v := range signals {
		if v == s {
			return n
		}
	}
	return strconv.Itoa(int(s))
}
