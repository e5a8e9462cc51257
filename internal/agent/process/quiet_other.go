//go:build !linux

package process

import (
	"os"

	"github.com/chaserhq/chaser/internal/errdefs"
)

// makeQuiet needs Linux's termios ioctls; the agent runs on Linux only.
func makeQuiet(f *os.File) error { return errdefs.ErrNotImplemented }
