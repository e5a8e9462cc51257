package agent

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// maxFilterInsns is the kernel's BPF_MAXINSNS.
const maxFilterInsns = 4096

// installSeccomp installs the seccomp filter program read from fd (the
// kernel's struct sock_filter array, as the server read it from a sandbox
// runc had filtered: internal/runtime/oci, seccomp_linux.go) on every
// thread of the agent, and closes fd. What the agent starts after it
// inherits the filter. The flags are runc's (none), plus TSYNC: the agent
// has threads by now, runc's init had one.
func installSeccomp(fd int) error {
	f := os.NewFile(uintptr(fd), "seccomp-filter")
	if f == nil {
		return fmt.Errorf("seccomp filter: fd %d is not open", fd)
	}
	b, err := io.ReadAll(io.LimitReader(f, 8*maxFilterInsns+1))
	f.Close()
	if err != nil {
		return fmt.Errorf("read the seccomp filter: %w", err)
	}
	prog, err := decodeFilter(b)
	if err != nil {
		return err
	}
	runtime.LockOSThread() // no_new_privs and the filter on the same thread
	defer runtime.UnlockOSThread()
	// runc set no_new_privs (the spec's noNewPrivileges) before it started
	// the agent; it is what lets a process without CAP_SYS_ADMIN filter.
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("no_new_privs: %w", err)
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	tid, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&fprog)))
	runtime.KeepAlive(prog)
	if errno != 0 {
		return fmt.Errorf("install the seccomp filter: %w", errno)
	}
	if tid != 0 {
		return fmt.Errorf("install the seccomp filter: thread %d could not take it", tid)
	}
	return nil
}

// decodeFilter parses a struct sock_filter array in the machine's byte order.
func decodeFilter(b []byte) ([]unix.SockFilter, error) {
	if len(b) == 0 || len(b)%8 != 0 || len(b) > 8*maxFilterInsns {
		return nil, fmt.Errorf("seccomp filter of %d bytes: want 1 to %d instructions of 8 bytes", len(b), maxFilterInsns)
	}
	prog := make([]unix.SockFilter, len(b)/8)
	for i := range prog {
		x := b[8*i:]
		prog[i] = unix.SockFilter{Code: binary.NativeEndian.Uint16(x), Jt: x[2], Jf: x[3], K: binary.NativeEndian.Uint32(x[4:])}
	}
	return prog, nil
}
