package process

import (
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// makeQuiet clears ECHO and ONLCR on the terminal: programs read exactly
// what they wrote, without "\r\n" for "\n" and without their input echoed.
func makeQuiet(f *os.File) error {
	var tio syscall.Termios
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), syscall.TCGETS, uintptr(unsafe.Pointer(&tio))); e != 0 {
		return e
	}
	tio.Lflag &^= syscall.ECHO | syscall.ECHOE | syscall.ECHOK | syscall.ECHONL | syscall.ECHOCTL
	tio.Oflag &^= syscall.ONLCR
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), syscall.TCSETS, uintptr(unsafe.Pointer(&tio))); e != 0 {
		return e
	}
	return nil
}

// pollable returns the terminal master f as a file Go's poller serves, and
// closes f. creack/pty hands the master back in blocking mode (its ioctls
// go through File.Fd, which sets it): every read of a terminal then held
// a thread in read(2), and with the agent's one P (GOMAXPROCS 1, see
// cmd/chaser-agent) each keystroke's echo waited for the scheduler to hand
// the P back (PTY echo p50 255 → 370 µs). A non-blocking duplicate is
// polled like a socket. Its ioctls must go through SyscallConn (winsize,
// foregroundGroup): File.Fd would make it blocking again.
func pollable(f *os.File) (*os.File, error) {
	defer f.Close()
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), f.Name()), nil
}

// setWinsize sets the size of the terminal whose master is f.
func setWinsize(f *os.File, cols, rows uint16) error {
	return control(f, func(fd int) error {
		return unix.IoctlSetWinsize(fd, unix.TIOCSWINSZ, &unix.Winsize{Col: cols, Row: rows})
	})
}

// foregroundGroup returns the foreground process group of the terminal
// whose master is f.
func foregroundGroup(f *os.File) (int, error) {
	var pgrp int
	err := control(f, func(fd int) (err error) {
		pgrp, err = unix.IoctlGetInt(fd, unix.TIOCGPGRP)
		return err
	})
	return pgrp, err
}

// control runs op on f's descriptor without changing its blocking mode.
func control(f *os.File, op func(fd int) error) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var opErr error
	if err := rc.Control(func(fd uintptr) { opErr = op(int(fd)) }); err != nil {
		return err
	}
	return opErr
}
