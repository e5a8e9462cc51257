//go:build !linux

package agent

import "errors"

// harden does nothing off Linux: there the agent is no sandbox's init, and
// only serves a socket for development.
func harden() error { return nil }

// resetNice does nothing off Linux.
func resetNice() {}

// installSeccomp fails off Linux: only runc on Linux hands the agent a
// filter, and an agent asked to filter must not run unfiltered.
func installSeccomp(fd int) error { return errors.New("seccomp filters need Linux") }
