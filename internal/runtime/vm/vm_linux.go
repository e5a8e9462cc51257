package vm

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/yamux"
	"golang.org/x/sys/unix"

	"github.com/chaserhq/chaser/internal/agent"
	"github.com/chaserhq/chaser/internal/errdefs"
	"github.com/chaserhq/chaser/internal/nice"
	"github.com/chaserhq/chaser/internal/runtime"
)

// Runtime runs sandboxes as QEMU microVMs.
type Runtime struct {
	cfg   Config
	log   *slog.Logger
	accel string

	build sync.Mutex // base disks and agent archives are built one at a time

	launching sync.Mutex // see launch

	mu       sync.Mutex
	sessions map[string]*yamux.Session
}

// New checks QEMU and the guest kernel and returns a Runtime, or
// errdefs.ErrFailedPrecondition naming what to install.
func New(cfg Config) (*Runtime, error) {
	if cfg.KernelDir == "" {
		cfg.KernelDir = DefaultKernelDir
	}
	if cfg.QEMU == "" {
		cfg.QEMU = "qemu-system-x86_64"
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.UIDCount <= 0 {
		cfg.UIDBase, cfg.UIDCount = DefaultUIDBase, DefaultUIDCount
	}
	path, err := exec.LookPath(cfg.QEMU)
	if err != nil {
		return nil, fmt.Errorf("runtime microvm: QEMU (%s) is not installed (apt-get install -y qemu-system-x86): %w", cfg.QEMU, errdefs.ErrFailedPrecondition)
	}
	cfg.QEMU = path
	for _, f := range []string{"vmlinux", "initramfs.cpio"} {
		if _, err := os.Stat(filepath.Join(cfg.KernelDir, f)); err != nil {
			return nil, fmt.Errorf("runtime microvm: no guest kernel in %s; build it with: %s: %w", cfg.KernelDir, KernelSetup, errdefs.ErrFailedPrecondition)
		}
	}
	for _, c := range []string{"mkfs.ext4"} {
		if _, err := exec.LookPath(c); err != nil {
			return nil, fmt.Errorf("runtime microvm: %s is missing (apt-get install -y e2fsprogs): %w", c, errdefs.ErrFailedPrecondition)
		}
	}
	accel := cfg.Accel
	switch accel {
	case "":
		accel = "tcg"
		if kvmUsable(path) {
			accel = "kvm"
		}
	case "kvm", "tcg":
	default:
		return nil, fmt.Errorf("microvm accelerator %q: use kvm or tcg: %w", accel, errdefs.ErrInvalidArgument)
	}
	for _, d := range []string{cfg.StateDir, cfg.CacheDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	return &Runtime{
		cfg: cfg, accel: accel, sessions: map[string]*yamux.Session{},
		log: cfg.Log.With("component", "runtime/vm", "runtime", "microvm", "accel", accel),
	}, nil
}

// kvmUsable tells whether QEMU can run KVM guests here. /dev/kvm may
// exist and answer yet fail to run a vCPU (nested virtualization without
// the MSRs QEMU sets: QEMU aborts while it resets the machine, after its
// QMP greeting), so a paused QEMU is started with KVM and asked over QMP
// to negotiate and quit: it answers only once the machine is made and
// reset. Waiting a fixed time instead took a QEMU that a loaded host had
// not brought that far for a working one (then every VM aborted).
func kvmUsable(qemu string) bool {
	fd, err := unix.Open("/dev/kvm", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	unix.Close(fd)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, qemu, "-M", "microvm", "-accel", "kvm", "-cpu", "host", "-nodefaults", "-no-user-config", "-display", "none", "-S", "-qmp", "stdio")
	cmd.Stdin = strings.NewReader(`{"execute":"qmp_capabilities"}` + "\n" + `{"execute":"quit"}` + "\n")
	out, err := cmd.Output()
	return err == nil && bytes.Contains(out, []byte(`"return"`))
}

// Name implements runtime.Runtime.
func (r *Runtime) Name() string { return "microvm" }

// OwnsDisk implements runtime.DiskOwner: a VM writes to its own disk
// image of Limits.DiskBytes.
func (r *Runtime) OwnsDisk() {}

// Accel is the accelerator VMs run with: "kvm" or "tcg".
func (r *Runtime) Accel() string { return r.accel }

// Platform is Accel, for the self-test and the logs.
func (r *Runtime) Platform() string { return r.accel }

func (r *Runtime) dir(id string) string { return filepath.Join(r.cfg.StateDir, id) }

func validID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// agentReadyTimeout bounds the wait for a booting guest's agent: a TCG
// boot takes about 2 s on an idle host, far more on a loaded one.
const agentReadyTimeout = 90 * time.Second

// Create implements runtime.Runtime.
func (r *Runtime) Create(ctx context.Context, s runtime.Spec) (err error) {
	if !validID(s.ID) {
		return fmt.Errorf("sandbox id %q: %w", s.ID, errdefs.ErrInvalidArgument)
	}
	if len(s.Rootfs.Overlays) != 1 || s.Rootfs.Overlays[0].Target != "/" {
		return fmt.Errorf("sandbox %s: runtime microvm runs OCI images only (one root filesystem; the host image is not offered): %w", s.ID, errdefs.ErrInvalidArgument)
	}
	agentBin, err := os.Stat(s.AgentPath)
	if err != nil || !agentBin.Mode().IsRegular() {
		return fmt.Errorf("sandbox %s: agent binary: %w", s.ID, errors.Join(err, errdefs.ErrFailedPrecondition))
	}
	dir := r.dir(s.ID)
	if err := os.Mkdir(dir, 0o700); err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("sandbox %s: %w", s.ID, errdefs.ErrAlreadyExists)
		}
		return err
	}
	defer func() {
		if err != nil {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			if derr := r.Delete(cctx, s.ID); derr != nil {
				r.log.Error("cleanup after failed create", "sandbox", s.ID, "err", derr)
			}
		}
	}()
	start := time.Now()
	base, err := r.baseDisk(ctx, s.Rootfs.Overlays[0].Lower)
	if err != nil {
		return fmt.Errorf("sandbox %s: base disk: %w", s.ID, err)
	}
	if s.Rootfs.UpperDir == "" {
		s.Rootfs.UpperDir = filepath.Join(dir, "upper")
	}
	upper, err := upperDisk(ctx, s.Rootfs.UpperDir, s.Limits.DiskBytes)
	if err != nil {
		return fmt.Errorf("sandbox %s: writable disk: %w", s.ID, err)
	}
	agentArchive, err := r.agentArchive(s.AgentPath)
	if err != nil {
		return fmt.Errorf("sandbox %s: %w", s.ID, err)
	}
	if err := r.writeInitrd(filepath.Join(dir, "initrd"), agentArchive, s); err != nil {
		return err
	}
	tap, err := prepareNetwork(s, filepath.Join(dir, "initrd")) // net_linux.go
	if err != nil {
		return err
	}
	disks := time.Since(start)
	args := r.qemuArgs(dir, base, upper, s.Limits)
	if tap != nil {
		defer tap.Close() // QEMU holds its own copy
		args = append(args, nicArgs(3)...)
	}
	cmd := exec.Command(r.cfg.QEMU, args...) // the VM outlives ctx
	if tap != nil {
		cmd.ExtraFiles = []*os.File{tap} // fd 3
	}
	if err := r.launch(cmd, dir); err != nil {
		return fmt.Errorf("sandbox %s: qemu: %w", s.ID, err)
	}
	launched := time.Since(start)
	if err := r.waitAgent(ctx, s.ID); err != nil {
		return err
	}
	r.log.Debug("sandbox started", "sandbox", s.ID, "disks", disks, "qemu", launched-disks, "agent", time.Since(start)-launched, "took", time.Since(start))
	return nil
}

// memory is the guest's RAM for a sandbox's limits, in MiB.
func memoryMiB(l runtime.Limits) int64 {
	if l.MemoryBytes <= 0 {
		return DefaultMemory >> 20
	}
	return (l.MemoryBytes + GuestOverhead + 1<<20 - 1) >> 20
}

// vcpus is the guest's CPU count: the CPU limit rounded up.
func vcpus(l runtime.Limits) int64 {
	if l.MilliCPUs <= 0 {
		return 1
	}
	return (l.MilliCPUs + 999) / 1000
}

// kernelArgs: reboot=t makes the agent's reset a triple fault, which
// ends QEMU (-no-reboot), as does a panic. The rest is boot time (see
// tcgArgs for the clock): the crypto self-tests (cryptomgr.notests and
// the KDF108 one, ~0.75 s under TCG) and the kprobe tracer's set-up
// (~0.15 s) are skipped; the guest's only user is the sandbox.
const kernelArgs = "console=ttyS0 quiet reboot=t panic=-1 rdinit=/init cryptomgr.notests=1 initcall_blacklist=crypto_kdf108_init,init_kprobe_trace"

// tcgArgs are the clock arguments of a TCG guest. A TCG guest's TSC is
// the host's, so the host's TSC rate (its cpu MHz) is the guest's: the
// early TSC and delay-loop values spare the guest a calibration that
// takes seconds (FACTS: it does not boot without them), and tsc=reliable
// keeps the clocksource watchdog, which compares against timer ticks that
// TCG delivers late, from dropping the TSC for jiffies. lpj is the delay
// loop per jiffy: kHz × 1000 / HZ (250 in Debian's kernel).
func tcgArgs() string {
	khz := hostTSCkHz()
	return fmt.Sprintf(" tsc_early_khz=%d lpj=%d tsc=reliable", khz, khz*4)
}

// hostTSCkHz is the host CPU's clock from /proc/cpuinfo, 2 GHz when it
// does not say.
func hostTSCkHz() int64 {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "cpu MHz" {
			if mhz, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil && mhz > 100 {
				return int64(mhz * 1000)
			}
		}
	}
	return 2000000
}

func (r *Runtime) qemuArgs(dir, base, upper string, l runtime.Limits) []string {
	// rtc=on: without a CMOS clock the kernel waits 1 s for it twice
	// (reading the time at boot, then probing rtc_cmos).
	machine := "microvm,x-option-roms=off,rtc=on"
	args := []string{"-M", machine, "-accel", r.accel}
	appendArgs := kernelArgs
	if r.accel == "kvm" {
		args = append(args, "-cpu", "host")
	} else {
		appendArgs += tcgArgs()
	}
	if l.Pids > 0 { // the agent makes it the guest's limit
		appendArgs += fmt.Sprintf(" %s=%d", agent.VMPidsParam, l.Pids)
	}
	// QEMU confines itself (see launch): -sandbox (seccomp) denies
	// obsolete system calls, new processes and programs and resource
	// control, -runas drops to a uid of its own once the disks, the
	// kernel, the console and the socket are open (as root). setuid and
	// friends stay allowed: QEMU 7.2 installs the filter before it drops
	// to the -runas uid, and after that they cannot raise anything.
	// -daemonize would fork after the filter: launch detaches QEMU.
	return append(args,
		"-m", strconv.FormatInt(memoryMiB(l), 10), "-smp", strconv.FormatInt(vcpus(l), 10),
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-kernel", filepath.Join(r.cfg.KernelDir, "vmlinux"),
		"-initrd", filepath.Join(dir, "initrd"),
		"-append", appendArgs,
		"-serial", "file:"+filepath.Join(dir, "console.log"),
		"-drive", "id=base,file="+base+",format=raw,if=none,readonly=on",
		"-device", "virtio-blk-device,drive=base",
		"-drive", "id=upper,file="+upper+",format=raw,if=none",
		"-device", "virtio-blk-device,drive=upper",
		"-device", "virtio-serial-device",
		"-chardev", "socket,id=agent,path="+filepath.Join(dir, "serial.sock")+",server=on,wait=off",
		"-device", "virtserialport,chardev=agent,name=chaser",
		// No default NIC: network mode none; internet adds one on a tap
		// (nicArgs, net_linux.go).
		"-nic", "none",
		"-pidfile", filepath.Join(dir, "qemu.pid"),
		"-sandbox", "on,obsolete=deny,spawn=deny,resourcecontrol=deny",
	)
}

// launchTimeout bounds QEMU's start up to its pid file and socket (well
// under a second on an idle host).
const launchTimeout = 30 * time.Second

// launch starts QEMU detached from the server (a session of its own, so
// it outlives a server's crash; the server reaps it while it runs) as an
// unprivileged uid of its own (freeUID), and returns once QEMU wrote its
// pid file and made its serial socket, or with its error output if it
// ended first.
func (r *Runtime) launch(cmd *exec.Cmd, dir string) error {
	r.launching.Lock() // one uid pick at a time, until the pid file shows it taken
	defer r.launching.Unlock()
	if os.Geteuid() == 0 {
		uid, err := r.freeUID()
		if err != nil {
			return err
		}
		cmd.Args = append(cmd.Args, "-runas", fmt.Sprintf("%d:%d", uid, uid))
	}
	logPath := filepath.Join(dir, "qemu.log")
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer log.Close()
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	// QEMU (the tenant's vCPUs) runs at the host's default priority, not
	// the server's raised one it inherited (host.server_nice); it may not
	// change it itself (-sandbox resourcecontrol=deny), and threads it
	// makes later inherit their maker's.
	_ = nice.Set(cmd.Process.Pid, 0)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	pidFile := filepath.Join(dir, "qemu.pid")
	want := strconv.Itoa(cmd.Process.Pid)
	deadline := time.Now().Add(launchTimeout)
	for {
		select {
		case err := <-exited:
			out, _ := os.ReadFile(logPath)
			return fmt.Errorf("%v: %s", err, strings.TrimSpace(string(out)))
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-exited
			return fmt.Errorf("no pid file and serial socket within %v", launchTimeout)
		}
		// QEMU writes its pid file before it makes the serial socket.
		if b, err := os.ReadFile(pidFile); err == nil && strings.TrimSpace(string(b)) == want {
			if _, err := os.Stat(filepath.Join(dir, "serial.sock")); err == nil {
				_ = nice.Set(cmd.Process.Pid, 0) // threads made before the first pass
				return nil
			}
		}
	}
}

// freeUID is a uid in [UIDBase, UIDBase+UIDCount) that no running VM of
// this runtime uses: each QEMU runs as its own user, so a QEMU taken over
// by its guest cannot signal or trace the others.
func (r *Runtime) freeUID() (int, error) {
	used := map[int]bool{}
	entries, _ := os.ReadDir(r.cfg.StateDir)
	for _, e := range entries {
		if pid := r.pid(e.Name()); pid > 0 {
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
			for _, line := range strings.Split(string(b), "\n") {
				if v, ok := strings.CutPrefix(line, "Uid:"); ok {
					if f := strings.Fields(v); len(f) > 0 {
						uid, _ := strconv.Atoi(f[0])
						used[uid] = true
					}
				}
			}
		}
	}
	for uid := r.cfg.UIDBase; uid < r.cfg.UIDBase+r.cfg.UIDCount; uid++ {
		if !used[uid] {
			return uid, nil
		}
	}
	return 0, fmt.Errorf("all %d QEMU uids from %d are in use: %w", r.cfg.UIDCount, r.cfg.UIDBase, errdefs.ErrResourceExhausted)
}

// waitAgent waits until the guest's agent answers its health check over
// the serial session, or the VM ended.
func (r *Runtime) waitAgent(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(ctx, agentReadyTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		c, err := r.Dial(ctx, id)
		// The socket's file exists from QEMU's bind(2); connect is
		// refused until its listen(2), a moment later (CI's loaded host
		// once got there first).
		for errors.Is(err, syscall.ECONNREFUSED) && ctx.Err() == nil {
			time.Sleep(20 * time.Millisecond)
			c, err = r.Dial(ctx, id)
		}
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		stop := context.AfterFunc(ctx, func() { c.Close() })
		defer stop()
		if _, err := io.WriteString(c, "GET /v1/health HTTP/1.1\r\nHost: agent\r\nConnection: close\r\n\r\n"); err != nil {
			done <- err
			return
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				err = fmt.Errorf("agent health: %s", resp.Status)
			}
		}
		done <- err
	}()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			if err != nil {
				return fmt.Errorf("sandbox %s: agent: %v: %s", id, err, r.consoleTail(id))
			}
			return nil
		case <-tick.C:
			if in, err := r.State(ctx, id); err == nil && in.State != runtime.Running {
				return fmt.Errorf("sandbox %s: the VM stopped before its agent answered: %s", id, r.consoleTail(id))
			}
		case <-ctx.Done():
			return fmt.Errorf("sandbox %s: the agent did not answer within %v: %s", id, agentReadyTimeout, r.consoleTail(id))
		}
	}
}

// consoleTail returns the end of the guest's console, for errors.
func (r *Runtime) consoleTail(id string) string {
	b, _ := os.ReadFile(filepath.Join(r.dir(id), "console.log"))
	if q, _ := os.ReadFile(filepath.Join(r.dir(id), "qemu.log")); len(q) > 0 {
		b = append(append(b, "\nqemu: "...), q...)
	}
	if len(b) > 1500 {
		b = b[len(b)-1500:]
	}
	return strings.TrimSpace(string(b))
}

// session returns the yamux session to sandbox id's agent, connecting to
// the VM's serial socket when there is none (a new server finds VMs it
// did not start).
func (r *Runtime) session(id string) (*yamux.Session, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s := r.sessions[id]; s != nil && !s.IsClosed() {
		return s, nil
	}
	c, err := net.DialTimeout("unix", filepath.Join(r.dir(id), "serial.sock"), 5*time.Second)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) {
			err = op.Err // no host paths in errors
		}
		return nil, fmt.Errorf("sandbox %s agent: %w: %w", id, err, errdefs.ErrUnavailable)
	}
	cfg := yamux.DefaultConfig()
	cfg.LogOutput = io.Discard
	cfg.StreamOpenTimeout = agentReadyTimeout
	s, err := yamux.Client(c, cfg)
	if err != nil {
		c.Close()
		return nil, err
	}
	r.sessions[id] = s
	return s, nil
}

// Dial implements runtime.Runtime: a new stream of the VM's session.
func (r *Runtime) Dial(ctx context.Context, id string) (net.Conn, error) {
	if !validID(id) {
		return nil, fmt.Errorf("sandbox %q: %w", id, errdefs.ErrNotFound)
	}
	s, err := r.session(id)
	if err != nil {
		return nil, err
	}
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		c, err := s.Open()
		ch <- result{c, err}
	}()
	select {
	case res := <-ch:
		if res.err != nil {
			return nil, fmt.Errorf("sandbox %s agent: %v: %w", id, res.err, errdefs.ErrUnavailable)
		}
		return res.c, nil
	case <-ctx.Done():
		go func() {
			if res := <-ch; res.c != nil {
				res.c.Close()
			}
		}()
		return nil, fmt.Errorf("sandbox %s agent: %w", id, errors.Join(ctx.Err(), errdefs.ErrUnavailable))
	}
}

// pid returns the QEMU process of sandbox id when it runs: the pid file's
// process, if it is alive (not a zombie) and is this sandbox's QEMU.
func (r *Runtime) pid(id string) int {
	b, err := os.ReadFile(filepath.Join(r.dir(id), "qemu.pid"))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !bytes.Contains(cmdline, []byte(filepath.Join(r.dir(id), "serial.sock"))) {
		return 0
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	if i := bytes.LastIndexByte(stat, ')'); i > 0 && i+2 < len(stat) && (stat[i+2] == 'Z' || stat[i+2] == 'X') {
		return 0
	}
	return pid
}

// State implements runtime.Runtime. A guest's OOM kill is read from its
// console, where the guest kernel reports it.
func (r *Runtime) State(ctx context.Context, id string) (runtime.Instance, error) {
	if !validID(id) {
		return runtime.Instance{}, fmt.Errorf("sandbox %q: %w", id, errdefs.ErrNotFound)
	}
	if _, err := os.Stat(r.dir(id)); err != nil {
		return runtime.Instance{}, fmt.Errorf("sandbox %s: %w", id, errdefs.ErrNotFound)
	}
	in := runtime.Instance{ID: id, State: runtime.Stopped, OOMKilled: r.oomKilled(id)}
	if pid := r.pid(id); pid > 0 {
		in.PID, in.State = pid, runtime.Running
	}
	return in, nil
}

func (r *Runtime) oomKilled(id string) bool {
	b, _ := os.ReadFile(filepath.Join(r.dir(id), "console.log"))
	return bytes.Contains(b, []byte("Out of memory: Killed process")) || bytes.Contains(b, []byte("Memory cgroup out of memory"))
}

// List implements runtime.Runtime from the state directories.
func (r *Runtime) List(ctx context.Context) ([]runtime.Instance, error) {
	entries, err := os.ReadDir(r.cfg.StateDir)
	if err != nil {
		return nil, err
	}
	var list []runtime.Instance
	for _, e := range entries {
		if !e.IsDir() || !validID(e.Name()) {
			continue
		}
		if in, err := r.State(ctx, e.Name()); err == nil {
			list = append(list, in)
		}
	}
	return list, nil
}

// Stats implements runtime.Runtime: the host memory the VM costs (QEMU's
// resident set: guest RAM touched plus QEMU itself).
func (r *Runtime) Stats(ctx context.Context, id string) (runtime.Stats, error) {
	in, err := r.State(ctx, id)
	if err != nil {
		return runtime.Stats{}, err
	}
	if in.PID == 0 {
		return runtime.Stats{}, fmt.Errorf("sandbox %s is not running: %w", id, errdefs.ErrNotFound)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", in.PID))
	if err != nil {
		return runtime.Stats{}, err
	}
	var st runtime.Stats
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			st.MemoryBytes = kb << 10
		}
		if v, ok := strings.CutPrefix(line, "Threads:"); ok {
			st.Pids, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	return st, nil
}

// poweroffTimeout bounds how long Delete waits for a guest to flush its
// disks and end before QEMU is killed.
const poweroffTimeout = 5 * time.Second

// Delete implements runtime.Runtime: the guest is asked to power off (it
// syncs its disks first: the writable disk may be a workspace's), QEMU
// is killed if it does not end in time, then the state goes.
func (r *Runtime) Delete(ctx context.Context, id string) error {
	if !validID(id) {
		return fmt.Errorf("sandbox id %q: %w", id, errdefs.ErrInvalidArgument)
	}
	if pid := r.pid(id); pid > 0 {
		if err := r.poweroff(ctx, id); err != nil {
			r.log.Debug("poweroff", "sandbox", id, "err", err)
		}
		if !waitGone(ctx, r, id, poweroffTimeout) {
			_ = unix.Kill(pid, unix.SIGKILL)
			if !waitGone(ctx, r, id, 10*time.Second) {
				return fmt.Errorf("sandbox %s: qemu (pid %d) survived SIGKILL", id, pid)
			}
		}
	}
	r.mu.Lock()
	if s := r.sessions[id]; s != nil {
		s.Close()
		delete(r.sessions, id)
	}
	r.mu.Unlock()
	if err := os.RemoveAll(r.dir(id)); err != nil {
		return err
	}
	return nil
}

// poweroff asks the guest's agent to sync and power off.
func (r *Runtime) poweroff(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	c, err := r.Dial(ctx, id)
	if err != nil {
		return err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	if _, err := io.WriteString(c, "POST /v1/vm/poweroff HTTP/1.1\r\nHost: agent\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"); err != nil {
		return err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("poweroff: %s", resp.Status)
	}
	return nil
}

func waitGone(ctx context.Context, r *Runtime, id string, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for r.pid(id) > 0 {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// Close ends the sessions to the agents; the VMs run on.
func (r *Runtime) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, s := range r.sessions {
		s.Close()
		delete(r.sessions, id)
	}
	return nil
}

// baseDisk returns the read-only ext4 disk of a layer stack (topmost
// first), building it once: the layers merged by a read-only overlay
// mount (which applies their whiteouts), copied by mkfs.ext4 -d.
func (r *Runtime) baseDisk(ctx context.Context, lowers []string) (string, error) {
	h := sha256.New()
	for _, l := range lowers {
		io.WriteString(h, l+"\n")
	}
	path := filepath.Join(r.cfg.CacheDir, "base-"+hex.EncodeToString(h.Sum(nil))[:24]+".ext4")
	r.build.Lock()
	defer r.build.Unlock()
	list := strings.TrimSuffix(path, ".ext4") + ".layers"
	if _, err := os.Stat(path); err == nil {
		if _, err := os.Stat(list); err != nil { // a disk made before PruneDisks
			err = os.WriteFile(list, []byte(strings.Join(lowers, "\n")+"\n"), 0o600)
			return path, err
		}
		return path, nil
	}
	tmp, err := os.MkdirTemp(r.cfg.CacheDir, "build-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	src := lowers[0]
	if len(lowers) > 1 {
		src = filepath.Join(tmp, "merged")
		if err := os.Mkdir(src, 0o755); err != nil {
			return "", err
		}
		if err := unix.Mount("overlay", src, "overlay", unix.MS_RDONLY, "lowerdir="+strings.Join(lowers, ":")); err != nil {
			return "", fmt.Errorf("merge layers: %w", err)
		}
		defer unix.Unmount(src, unix.MNT_DETACH)
	}
	size, files, err := treeSize(src)
	if err != nil {
		return "", err
	}
	// Room for ext4's metadata and block rounding.
	size = size + size/4 + files*4096 + 64<<20
	img := filepath.Join(tmp, "base.ext4")
	if err := mkfs(ctx, img, size, "chaser-base", "-d", src, "-N", strconv.FormatInt(files+files/2+1024, 10)); err != nil {
		return "", err
	}
	// The layers it was made of, for PruneDisks: written first, so no
	// disk is ever without its list.
	if err := os.WriteFile(list, []byte(strings.Join(lowers, "\n")+"\n"), 0o600); err != nil {
		return "", err
	}
	if err := os.Rename(img, path); err != nil {
		return "", err
	}
	r.log.Info("built base disk", "layers", len(lowers), "bytes", size)
	return path, nil
}

// PruneDisks removes the base disks whose layers are gone (the image
// cache's GC collected them: the image was removed) and reports how many
// it removed. Running VMs keep theirs open, so they run on; a create
// holds its layers (an image lease) until its VM has opened its disk.
func (r *Runtime) PruneDisks(ctx context.Context) (int, error) {
	r.build.Lock()
	defer r.build.Unlock()
	lists, err := filepath.Glob(filepath.Join(r.cfg.CacheDir, "base-*.layers"))
	if err != nil {
		return 0, err
	}
	n := 0
	for _, list := range lists {
		b, err := os.ReadFile(list)
		if err != nil {
			return n, err
		}
		gone := false
		for _, l := range strings.Fields(string(b)) {
			if _, err := os.Stat(l); errors.Is(err, fs.ErrNotExist) {
				gone = true
			}
		}
		if !gone {
			continue
		}
		disk := strings.TrimSuffix(list, ".layers") + ".ext4"
		if err := os.Remove(disk); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return n, err
		}
		if err := os.Remove(list); err != nil {
			return n, err
		}
		n++
		r.log.Info("base disk collected", "disk", filepath.Base(disk))
	}
	return n, nil
}

// treeSize sums the sizes of the files under dir and counts its entries.
func treeSize(dir string) (size, files int64, err error) {
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		files++
		if d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				size += fi.Size()
			}
		}
		return nil
	})
	return size, files, err
}

// mkfs makes an ext4 file system of size bytes in a new sparse file.
func mkfs(ctx context.Context, path string, size int64, label string, extra ...string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	err = f.Truncate(size)
	f.Close()
	if err != nil {
		return err
	}
	// lazy_journal_init: the file is new and sparse, its journal already
	// zeros; writing them again costs 64 MiB of I/O per 4 GiB disk.
	args := append([]string{"-q", "-F", "-L", label, "-E", "root_owner=0:0,lazy_itable_init=1,lazy_journal_init=1"}, extra...)
	out, err := exec.CommandContext(ctx, "mkfs.ext4", append(args, path)...).CombinedOutput()
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("mkfs.ext4: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// upperDisk returns the writable disk in upperDir, made on first use (a
// workspace's is reused). Its size is the sandbox's disk limit.
func upperDisk(ctx context.Context, upperDir string, size int64) (string, error) {
	if err := os.MkdirAll(upperDir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(upperDir, "disk.ext4")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	if size <= 0 {
		size = DefaultDisk
	}
	tmp := path + ".tmp"
	os.Remove(tmp)
	if err := mkfs(ctx, tmp, size, "chaser-upper"); err != nil {
		return "", err
	}
	return path, os.Rename(tmp, path)
}

// agentArchive returns a cpio archive holding the agent binary as
// /chaser/agent, cached per content.
func (r *Runtime) agentArchive(agentPath string) (string, error) {
	b, err := os.ReadFile(agentPath)
	if err != nil {
		return "", fmt.Errorf("agent binary: %w", err)
	}
	sum := sha256.Sum256(b)
	path := filepath.Join(r.cfg.CacheDir, "agent-"+hex.EncodeToString(sum[:])[:24]+".cpio")
	r.build.Lock()
	defer r.build.Unlock()
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	var buf bytes.Buffer
	if err := writeCpio(&buf, []cpioFile{{Name: "chaser/agent", Mode: 0o100755, Data: b}}); err != nil {
		return "", err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, buf.Bytes(), 0o600); err != nil {
		return "", err
	}
	return path, os.Rename(tmp, path)
}

// writeInitrd writes the sandbox's initramfs: the kernel dir's (busybox,
// modules, /init), the agent's, and the sandbox's settings (environment,
// hostname), concatenated as the kernel accepts them.
func (r *Runtime) writeInitrd(path, agentArchive string, s runtime.Spec) error {
	out, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer out.Close()
	for _, p := range []string{filepath.Join(r.cfg.KernelDir, "initramfs.cpio"), agentArchive} {
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		_, err = io.Copy(out, in)
		in.Close()
		if err != nil {
			return err
		}
	}
	var env bytes.Buffer
	for _, kv := range s.Env {
		env.WriteString(kv)
		env.WriteByte(0)
	}
	if err := writeCpio(out, []cpioFile{
		{Name: "chaser/env", Mode: 0o100600, Data: env.Bytes()},
		{Name: "chaser/hostname", Mode: 0o100644, Data: []byte(s.Hostname + "\n")},
	}); err != nil {
		return err
	}
	return out.Close()
}
