package process

import (
	"os"
	"syscall"
	"unsafe"
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
