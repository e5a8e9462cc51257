package agent

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/yamux"
	"golang.org/x/sys/unix"
)

// VM mode: the agent is the init of a microVM (runtime/vm). The
// initramfs has stacked the root filesystem and put the agent and the
// sandbox's settings in /.chaser; the agent mounts the kernel's file
// systems, takes its environment from /.chaser/env and serves its API on
// the virtio-serial port named VMPort. A serial port is one byte stream,
// so it carries a yamux session: every stream the host opens is one
// connection to the API, as a unix socket connection is in a container.
const (
	// VMPort is the name of the virtio-serial port the host listens on.
	VMPort = "chaser"
	// VMEnvFile holds the agent's environment, NUL-separated KEY=VALUE.
	VMEnvFile = "/.chaser/env"
)

// MainVM is the entry point of `chaser agent --vm`.
func MainVM() error {
	if err := harden(); err != nil {
		return fmt.Errorf("make the agent non-dumpable: %w", err)
	}
	log := newLog()
	if err := vmMounts(); err != nil {
		return err
	}
	if err := loadEnv(VMEnvFile); err != nil {
		return err
	}
	if err := limitPids(); err != nil {
		return err
	}
	port, err := findPort(VMPort)
	if err != nil {
		return err
	}
	// The port is opened once and kept: the guest side of a
	// virtio-serial port outlives host connections.
	fd, err := unix.Open(port, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", port, err)
	}
	l := &serialListener{f: os.NewFile(uintptr(fd), port), fd: fd, log: log}
	return serve(l, log, func() {
		unix.Sync()
		// QEMU runs with -no-reboot: a reset ends it.
		_ = unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
	})
}

// vmMounts mounts what a container runtime would: /proc, /sys, /dev/pts,
// /dev/shm (the initramfs moved a devtmpfs to /dev).
func vmMounts() error {
	mounts := []struct{ target, fstype, data string }{
		{"/proc", "proc", ""},
		{"/sys", "sysfs", ""},
		{"/dev/pts", "devpts", "mode=0620,gid=5,ptmxmode=0666"},
		{"/dev/shm", "tmpfs", "mode=1777"},
	}
	for _, m := range mounts {
		if err := os.MkdirAll(m.target, 0o755); err != nil {
			return err
		}
		flags := uintptr(unix.MS_NOSUID | unix.MS_NODEV)
		if m.fstype == "devpts" { // its terminals are device nodes: nodev would refuse to open them
			flags = unix.MS_NOSUID | unix.MS_NOEXEC
		}
		if err := unix.Mount(m.fstype, m.target, m.fstype, flags, m.data); err != nil {
			return fmt.Errorf("mount %s: %w", m.target, err)
		}
	}
	if _, err := os.Lstat("/dev/ptmx"); err != nil {
		_ = os.Symlink("pts/ptmx", "/dev/ptmx")
	}
	return nil
}

// loadEnv replaces the process environment with the one in path.
func loadEnv(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	os.Clearenv()
	for _, kv := range bytes.Split(b, []byte{0}) {
		if k, v, ok := strings.Cut(string(kv), "="); ok && k != "" {
			os.Setenv(k, v)
		}
	}
	return nil
}

// findPort returns the device of the virtio-serial port called name.
func findPort(name string) (string, error) {
	for range 250 { // the driver may still be probing
		ports, _ := filepath.Glob("/sys/class/virtio-ports/*/name")
		for _, p := range ports {
			if b, err := os.ReadFile(p); err == nil && strings.TrimSpace(string(b)) == name {
				return "/dev/" + filepath.Base(filepath.Dir(p)), nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return "", fmt.Errorf("no virtio-serial port named %q", name)
}

// serialListener accepts the streams of a yamux session over the serial
// port. When the host goes away (a server restart), the session ends: it
// waits until the host is connected again and starts a new one.
type serialListener struct {
	f   *os.File
	fd  int
	log *slog.Logger

	mu     sync.Mutex
	sess   *yamux.Session
	closed bool
}

// keepOpen hides Close from yamux: the port outlives the session.
type keepOpen struct{ io.ReadWriter }

func (keepOpen) Close() error { return nil }

func (l *serialListener) session() (*yamux.Session, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, net.ErrClosed
	}
	if l.sess != nil {
		return l.sess, nil
	}
	l.waitHost()
	cfg := yamux.DefaultConfig()
	cfg.LogOutput = io.Discard
	s, err := yamux.Server(keepOpen{l.f}, cfg)
	if err != nil {
		return nil, err
	}
	l.sess = s
	return s, nil
}

// waitHost waits until the host end of the port is connected: until then
// poll reports POLLHUP and reads return EOF.
func (l *serialListener) waitHost() {
	for {
		fds := []unix.PollFd{{Fd: int32(l.fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, 100)
		if err == nil && (n == 0 || fds[0].Revents&unix.POLLHUP == 0) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (l *serialListener) Accept() (net.Conn, error) {
	for {
		s, err := l.session()
		if err != nil {
			return nil, err
		}
		c, err := s.Accept()
		if err == nil {
			return c, nil
		}
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			return nil, net.ErrClosed
		}
		if l.sess == s {
			l.sess = nil
		}
		l.mu.Unlock()
		s.Close()
		if !errors.Is(err, io.EOF) && !errors.Is(err, yamux.ErrSessionShutdown) {
			l.log.Info("serial session ended", "err", err)
		}
	}
}

func (l *serialListener) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	if l.sess != nil {
		l.sess.Close()
	}
	return nil
}

func (l *serialListener) Addr() net.Addr { return vmAddr{} }

type vmAddr struct{}

func (vmAddr) Network() string { return "virtio-serial" }
func (vmAddr) String() string  { return VMPort }

// VMPidsParam is the kernel command line parameter that carries the
// sandbox's process limit (its dot makes the kernel keep it from init's
// environment).
const VMPidsParam = "chaser.pids"

// limitPids puts the agent, and so every process it starts, in a cgroup
// of its own whose pids.max is the sandbox's process limit, when the
// runtime passed one (VMPidsParam): a fork bomb is held as in a
// container, where the agent shares the container's limit too. The
// cgroup file system is unmounted again (the hierarchy lives on), so
// the sandbox sees no cgroup of its own, as the stats expect; guest root
// could mount it and lift the limit, which frees nothing beyond its own
// VM.
func limitPids() error {
	b, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return err
	}
	var limit string
	for _, f := range strings.Fields(string(b)) {
		if v, ok := strings.CutPrefix(f, VMPidsParam+"="); ok {
			limit = v
		}
	}
	if limit == "" {
		return nil
	}
	const dir = "/sys/fs/cgroup"
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := unix.Mount("cgroup2", dir, "cgroup2", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount cgroup2: %w", err)
	}
	defer unix.Unmount(dir, unix.MNT_DETACH)
	sandbox := filepath.Join(dir, "sandbox")
	for _, w := range []struct{ path, value string }{
		{filepath.Join(dir, "cgroup.subtree_control"), "+pids"},
		{sandbox, ""},
		{filepath.Join(sandbox, "pids.max"), limit},
		{filepath.Join(sandbox, "cgroup.procs"), "0"}, // 0: the writer
	} {
		var err error
		if w.value == "" {
			err = os.Mkdir(w.path, 0o755)
		} else {
			err = os.WriteFile(w.path, []byte(w.value), 0)
		}
		if err != nil {
			return fmt.Errorf("pids limit %s: %w", limit, err)
		}
	}
	return nil
}
