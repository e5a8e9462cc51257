//go:build !linux

package agent

// harden does nothing off Linux: there the agent is no sandbox's init, and
// only serves a socket for development.
func harden() error { return nil }

// resetNice does nothing off Linux.
func resetNice() {}
