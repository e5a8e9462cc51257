//go:build !linux

package process

import (
	"os"

	"github.com/creack/pty"

	"github.com/chaserhq/chaser/internal/errdefs"
)

// makeQuiet needs Linux's termios ioctls; the agent runs on Linux only.
func makeQuiet(f *os.File) error { return errdefs.ErrNotImplemented }

// pollable returns f: off Linux the agent serves development only.
func pollable(f *os.File) (*os.File, error) { return f, nil }

// setWinsize sets the size of the terminal whose master is f.
func setWinsize(f *os.File, cols, rows uint16) error {
	return pty.Setsize(f, &pty.Winsize{Cols: cols, Rows: rows})
}

// foregroundGroup needs Linux's TIOCGPGRP here.
func foregroundGroup(f *os.File) (int, error) { return 0, errdefs.ErrNotImplemented }
