//go:build !linux

package agent

import "errors"

// MainVM is the entry point of `chaser agent --vm`: Linux guests only.
func MainVM() error { return errors.New("the VM mode of the agent runs in Linux guests only") }
