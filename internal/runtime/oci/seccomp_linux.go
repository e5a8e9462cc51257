package oci

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/chaserhq/chaser/internal/runtime"
)

// A runc sandbox's seccomp filter, compiled once.
//
// runc compiles the spec's seccomp profile (Docker's: 404 syscall names,
// argument rules, three architectures) with libseccomp in every `runc
// run`, and that was a third of it here: 68.8 ms with the profile, 42.8
// ms without (a bare `runc run` of a sandbox's config, 20 alternating
// runs; docs/BENCHMARKS.md). The program it makes depends only on the
// profile, which is the same for every runc sandbox (SeccompProfile), and
// on the runc and libseccomp installed. So once a server has made its
// first runc sandbox (the ordinary way: the profile in its config), it
// makes a probe sandbox the same way, reads the program runc installed
// in its agent (PTRACE_SECCOMP_GET_FILTER) and deletes it. Every sandbox
// after that is started without the profile, and its agent installs that
// program on all its threads before it does anything else (agent.Main):
// nothing of the sandbox's runs before it, and everything the agent
// starts inherits it. The agent fails, and with it the sandbox, if it
// cannot. What is installed is the program runc made, byte for byte;
// two runc runs themselves differ only in the order of the architecture
// checks of runc's own prologue (a Go map's), and answer alike
// (TestSeccompFromProbe checks both). Until the probe has succeeded, or
// if it cannot (a kernel without CONFIG_CHECKPOINT_RESTORE, no
// CAP_SYS_ADMIN: logged), sandboxes get the profile through runc.

// maxFilterInsns is the kernel's BPF_MAXINSNS.
const maxFilterInsns = 4096

// probeTries bounds how often a server tries to read the filter.
const probeTries = 3

// seccompProgram returns the compiled filter for the runc sandboxes'
// profile, or nil when there is none (yet, or under runsc, which filters
// with the profile itself: --oci-seccomp).
func (r *Runtime) seccompProgram() []byte {
	if r.gvisor() {
		return nil
	}
	if p := r.filter.prog.Load(); p != nil {
		return *p
	}
	return nil
}

// startProbe reads the filter in the background, with agentPath (the
// agent binary of a sandbox just made), unless it is read, being read, or
// was tried probeTries times.
func (r *Runtime) startProbe(agentPath string) {
	if r.gvisor() || r.filter.prog.Load() != nil {
		return
	}
	r.filter.mu.Lock()
	defer r.filter.mu.Unlock()
	if r.filter.probing || r.filter.tries >= probeTries || r.closed {
		return
	}
	r.filter.probing = true
	r.filter.tries++
	try := r.filter.tries
	r.filter.wg.Add(1)
	go func() {
		defer r.filter.wg.Done()
		start := time.Now()
		prog, err := r.probeSeccomp(agentPath)
		if err == nil {
			r.filter.prog.Store(&prog)
		}
		r.filter.mu.Lock()
		r.filter.probing = false
		r.filter.mu.Unlock()
		if err != nil {
			r.log.Warn("seccomp filter not read: sandboxes keep getting the profile through the runtime (slower creates)", "try", try, "of", probeTries, "err", err)
			return
		}
		r.log.Info("seccomp filter read from a probe sandbox: agents install it", "instructions", len(prog)/8, "took", time.Since(start))
	}()
}

// probeSeccomp makes a sandbox with the profile in its config, reads the
// filter runc installed in its agent and deletes it.
func (r *Runtime) probeSeccomp(agentPath string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// An empty root, beside the state directory: nothing in it is
	// listed as a sandbox.
	lower := filepath.Join(filepath.Dir(r.cfg.StateDir), "seccomp-probe-root")
	if err := os.MkdirAll(lower, 0o755); err != nil {
		return nil, err
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	id := "seccomp-probe-" + hex.EncodeToString(b[:])
	err := r.create(ctx, runtime.Spec{
		ID:        id,
		Hostname:  "seccomp-probe",
		Rootfs:    runtime.Rootfs{Overlays: []runtime.Overlay{{Target: "/", Lower: []string{lower}}}},
		AgentPath: agentPath,
		Limits:    runtime.Limits{MemoryBytes: 64 << 20, Pids: 64},
	}, nil)
	if err != nil {
		return nil, fmt.Errorf("probe sandbox: %w", err)
	}
	defer func() {
		if err := r.Delete(context.WithoutCancel(ctx), id); err != nil {
			r.log.Error("delete seccomp probe", "sandbox", id, "err", err)
		}
	}()
	pid, err := r.PID(id)
	if err != nil {
		return nil, err
	}
	return readSeccomp(pid)
}

// readSeccomp returns the seccomp filter program of process pid, which
// must hold exactly one, encoded as the kernel's struct sock_filter array.
// It needs CAP_SYS_ADMIN and a kernel with CONFIG_CHECKPOINT_RESTORE.
func readSeccomp(pid int) ([]byte, error) {
	// ptrace binds the tracee to this thread. Unless it was detached, the
	// thread must end with its goroutine (Go ends a thread left locked),
	// which detaches the tracee: no other goroutine may run on a thread
	// that traces a process.
	goruntime.LockOSThread()
	detached := false
	defer func() {
		if detached {
			goruntime.UnlockOSThread()
		}
	}()
	if err := unix.PtraceSeize(pid); err != nil {
		detached = true
		return nil, fmt.Errorf("ptrace seize %d: %w", pid, err)
	}
	if err := unix.PtraceInterrupt(pid); err != nil {
		return nil, fmt.Errorf("ptrace interrupt %d: %w", pid, err)
	}
	// The interrupt is repeated, and the wait bounded: once in ~280
	// probes here (a --userns-remap runtime's, reading the agent runc had
	// just exec'd; cause not found) the tracee never stopped and a plain
	// wait hung. A tracee that cannot stop stays traced until this
	// thread ends.
	var ws unix.WaitStatus
	for i, deadline := 1, time.Now().Add(5*time.Second); ; i++ {
		got, err := unix.Wait4(pid, &ws, unix.WALL|unix.WNOHANG, nil)
		if err != nil && err != unix.EINTR {
			return nil, fmt.Errorf("wait for %d to stop: %w", pid, err)
		}
		if got == pid {
			break
		}
		if time.Now().After(deadline) {
			st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
			return nil, fmt.Errorf("process %d did not stop in 5 s (%s)", pid, strings.TrimSpace(string(st)))
		}
		time.Sleep(time.Millisecond)
		if i%50 == 0 {
			_ = unix.PtraceInterrupt(pid)
		}
	}
	if !ws.Stopped() {
		return nil, fmt.Errorf("process %d did not stop (%v)", pid, ws)
	}
	defer func() { detached = unix.PtraceDetach(pid) == nil }()
	n, err := getFilter(pid, 0, nil)
	if err != nil {
		return nil, err
	}
	if n == 0 || n > maxFilterInsns {
		return nil, fmt.Errorf("process %d: seccomp filter of %d instructions", pid, n)
	}
	if _, err := getFilter(pid, 1, nil); !errors.Is(err, unix.ENOENT) {
		return nil, fmt.Errorf("process %d: not exactly one seccomp filter (%v)", pid, err)
	}
	prog := make([]unix.SockFilter, n)
	if m, err := getFilter(pid, 0, prog); err != nil || m != n {
		return nil, fmt.Errorf("process %d: seccomp filter changed while read (%d, %d instructions, %v)", pid, n, m, err)
	}
	return encodeFilter(prog), nil
}

// getFilter is ptrace(PTRACE_SECCOMP_GET_FILTER): the number of
// instructions of filter index of pid (0 is the last installed), copied
// into prog if it is not nil.
func getFilter(pid, index int, prog []unix.SockFilter) (int, error) {
	var p uintptr
	if prog != nil {
		p = uintptr(unsafe.Pointer(&prog[0]))
	}
	n, _, errno := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_SECCOMP_GET_FILTER, uintptr(pid), uintptr(index), p, 0, 0)
	goruntime.KeepAlive(prog)
	if errno != 0 {
		return 0, fmt.Errorf("PTRACE_SECCOMP_GET_FILTER %d of %d: %w", index, pid, errno)
	}
	return int(n), nil
}

// encodeFilter lays prog out as the kernel reads it (struct sock_filter:
// u16 code, u8 jt, u8 jf, u32 k, in the machine's byte order).
func encodeFilter(prog []unix.SockFilter) []byte {
	b := make([]byte, 0, 8*len(prog))
	for _, f := range prog {
		b = binary.NativeEndian.AppendUint16(b, f.Code)
		b = append(b, f.Jt, f.Jf)
		b = binary.NativeEndian.AppendUint32(b, f.K)
	}
	return b
}

// filterPipe returns the read end of a pipe holding prog, for the agent.
// prog (at most 32 KiB) must fit the pipe's buffer, as nothing reads it
// before runc has started the agent: the buffer is grown to 64 KiB (a
// pipe made past the user's pipe-user-pages-soft gets 8 KiB; root is
// exempt, but a write that still does not fit fails after a second
// instead of waiting for a reader).
func filterPipe(prog []byte) (*os.File, error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	if rc, cerr := pw.SyscallConn(); cerr == nil { // not Fd: it would make the pipe blocking
		_ = rc.Control(func(fd uintptr) { _, _ = unix.FcntlInt(fd, unix.F_SETPIPE_SZ, 1<<16) })
	}
	_ = pw.SetWriteDeadline(time.Now().Add(time.Second))
	_, err = pw.Write(prog)
	if cerr := pw.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		pr.Close()
		return nil, fmt.Errorf("hand the seccomp filter to the agent: %w", err)
	}
	return pr, nil
}
