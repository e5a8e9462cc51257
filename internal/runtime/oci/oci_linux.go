package oci

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/chaserhq/chaser/internal/errdefs"
	"github.com/chaserhq/chaser/internal/runtime"
)

// Runtime drives an OCI runtime CLI.
type Runtime struct {
	cfg Config
	log *slog.Logger

	filter struct { // the runc sandboxes' compiled seccomp filter (seccomp_linux.go)
		prog    atomic.Pointer[[]byte]
		mu      sync.Mutex
		probing bool
		tries   int
		wg      sync.WaitGroup
	}
	closed bool // by Close; under filter.mu
}

// sentryTasks is how many tasks gVisor's own sentry, gofer and their
// threads need beside the sandbox's processes: the pids limit of a runsc
// sandbox is raised by that much, or it could not start.
const sentryTasks = 32

// New checks that the runtime binary exists (and, for runsc, is recent
// enough) and returns a Runtime. It returns errdefs.ErrFailedPrecondition,
// with what to install, if it does not.
func New(cfg Config) (*Runtime, error) {
	if cfg.Name == "" {
		cfg.Name = "runc"
	}
	if cfg.Name != "runc" && cfg.Name != "runsc" {
		return nil, fmt.Errorf("runtime %q: use runc or runsc: %w", cfg.Name, errdefs.ErrInvalidArgument)
	}
	if cfg.Binary == "" {
		cfg.Binary = cfg.Name
	}
	if cfg.Name == "runsc" && cfg.Remap.Enabled() {
		return nil, fmt.Errorf("runtime runsc: --userns-remap applies to runc only (gVisor's own kernel already stands between sandbox root and the host): %w", errdefs.ErrInvalidArgument)
	}
	if cfg.Name == "runsc" && cfg.Platform == "" {
		cfg.Platform = "systrap"
	}
	if cfg.CgroupParent == "" {
		cfg.CgroupParent = "chaser"
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	path, err := exec.LookPath(cfg.Binary)
	if err != nil && cfg.Name == "runsc" && cfg.Binary == "runsc" {
		path, err = exec.LookPath(filepath.Join(RunscCache, "runsc"))
	}
	if err != nil {
		if cfg.Name == "runsc" {
			return nil, fmt.Errorf("runtime runsc (%s) is not installed; install it with: %s: %w", cfg.Binary, RunscInstall, errdefs.ErrFailedPrecondition)
		}
		return nil, fmt.Errorf("runtime %q is not installed (apt-get install -y %s): %w", cfg.Binary, cfg.Name, errdefs.ErrFailedPrecondition)
	}
	cfg.Binary = path
	if cfg.Name == "runsc" {
		if err := checkRunsc(path, cfg.Platform); err != nil {
			return nil, err
		}
	}
	for _, d := range []string{cfg.StateDir, cfg.RootDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	if cfg.Remap.Enabled() {
		if err := openStateRoot(cfg.StateDir, cfg.Remap); err != nil {
			return nil, err
		}
	}
	log := cfg.Log.With("component", "runtime/oci", "runtime", cfg.Name)
	if cfg.CPUShares > 0 {
		if err := weighParent(cfg.CgroupParent, cfg.CPUShares); err != nil {
			log.Warn("sandboxes' CPU weight not set (host.sandboxes_cpu_shares)", "cgroup", cfg.CgroupParent, "err", err)
		} else {
			log.Info("sandboxes' CPU weight", "cgroup", cfg.CgroupParent, "cpu_shares", cfg.CPUShares)
		}
	}
	return &Runtime{cfg: cfg, log: log}, nil
}

// checkRunsc fails with what to install when the runsc at path lacks
// platform (Debian's 2022 build has no systrap).
func checkRunsc(path, platform string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "help", "platforms").Output()
	if err != nil || !strings.Contains("\n"+string(out)+"\n", "\n"+platform+"\n") {
		return fmt.Errorf("runsc at %s is too old or broken (it lacks the %s platform); install the current one with: %s: %w",
			path, platform, RunscInstall, errdefs.ErrFailedPrecondition)
	}
	return nil
}

// Platform names how the runtime runs sandboxes beyond its name: runsc's
// platform (systrap, ptrace), "" for runc.
func (r *Runtime) Platform() string { return r.cfg.Platform }

// globalArgs are the flags every invocation of the runtime CLI takes.
// runsc: --overlay2=none, so that writes reach the host upper directory
// (workspaces keep it; the default root:self keeps them inside gVisor's
// own memory-backed overlay); --host-uds=create, so that the agent's
// socket is a host socket the server dials (see waitSocket).
func (r *Runtime) globalArgs() []string {
	args := []string{"--root", r.cfg.RootDir}
	if r.cfg.Name == "runsc" {
		// --network=none: gVisor's own loopback only, as runc sandboxes
		// have (=sandbox copies the interfaces of the network namespace,
		// and a fresh one has none up: not even loopback would work).
		// --oci-seccomp: the spec's seccomp profile (Docker's) filters the
		// sandbox's processes inside gVisor too; without it runsc ignores
		// linux.seccomp and gVisor's sentry answers every call it
		// implements (unshare of a user namespace works for any user).
		// --in-sandbox-cgroup=v2: gVisor's cgroup v1 view bind-mounts its
		// controllers read-write whatever the spec says, so root could
		// write limits and make child cgroups of the sentry's own
		// cgroupfs; its v2 view is one mount that keeps the spec's "ro".
		// It shows no limits (the host's cgroups enforce them; the
		// self-test reports those: see sandbox.SelfTest).
		args = append(args, "--platform", r.cfg.Platform, "--overlay2", "none", "--network", "none", "--host-uds", "create",
			"--oci-seccomp", "--in-sandbox-cgroup", "v2")
	}
	return args
}

// withNetwork returns args with runsc's --network value replaced.
func withNetwork(args []string, mode string) []string {
	out := append([]string(nil), args...)
	for i := range out[:len(out)-1] {
		if out[i] == "--network" {
			out[i+1] = mode
		}
	}
	return out
}

// Name implements runtime.Runtime.
func (r *Runtime) Name() string { return r.cfg.Name }

func (r *Runtime) dir(id string) string { return filepath.Join(r.cfg.StateDir, id) }

// socketPath is the host path of the agent's socket, outside anything the
// sandbox sees. Under runsc it is a hard link to the socket the agent
// bound in the shared directory (runSocketPath; see waitSocket).
func (r *Runtime) socketPath(id string) string {
	return filepath.Join(r.dir(id), "agent.sock")
}

// runSocketPath is where the agent of a runsc sandbox binds its socket: in
// the host directory shared with the sandbox as agentRunDir (see Create).
func (r *Runtime) runSocketPath(id string) string {
	return filepath.Join(r.dir(id), "run", "agent.sock")
}

func (r *Runtime) gvisor() bool { return r.cfg.Name == "runsc" }

// hostOverlays tells whether overlays beyond the root are mounted on the
// host and bind-mounted in: runsc mounts no overlays itself, and under a
// user namespace runc's would copy up with the namespace's credentials
// (userns_linux.go).
func (r *Runtime) hostOverlays() bool { return r.gvisor() || r.cfg.Remap.Enabled() }

// run runs the runtime CLI and returns its stdout; stderr becomes the error.
func (r *Runtime) run(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, r.cfg.Binary, append(r.globalArgs(), args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("%s %s: %v: %s", r.Name(), args[0], err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

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

// Create implements runtime.Runtime.
func (r *Runtime) Create(ctx context.Context, s runtime.Spec) error {
	prog := r.seccompProgram()
	if err := r.create(ctx, s, prog); err != nil {
		return err
	}
	if prog == nil {
		r.startProbe(s.AgentPath)
	}
	return nil
}

// create makes sandbox s. With a compiled seccomp filter prog (runc only)
// its config has no seccomp profile: the agent installs prog instead,
// read from its fd 4 (seccomp_linux.go).
func (r *Runtime) create(ctx context.Context, s runtime.Spec, prog []byte) (err error) {
	if s.Network != nil && r.cfg.Remap.Enabled() {
		// The server keeps such sessions at mode none (daemon.loopbackTiers).
		return fmt.Errorf("sandbox %s: egress with --userns-remap: runc cannot mount /sys in a user namespace that does not own the network namespace it joins: %w", s.ID, errdefs.ErrFailedPrecondition)
	}
	if !validID(s.ID) {
		return fmt.Errorf("sandbox id %q: %w", s.ID, errdefs.ErrInvalidArgument)
	}
	if len(s.Rootfs.Overlays) == 0 || s.Rootfs.Overlays[0].Target != "/" {
		return fmt.Errorf("sandbox %s: rootfs needs an overlay at /: %w", s.ID, errdefs.ErrInvalidArgument)
	}
	dir := r.dir(s.ID)
	if err := os.Mkdir(dir, 0o700); err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("sandbox %s: %w", s.ID, errdefs.ErrAlreadyExists)
		}
		return err
	}
	// Whatever fails from here on, release what was made. The sandbox's
	// life is not the request's: cleanup gets its own context.
	defer func() {
		if err != nil {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			if derr := r.Delete(cctx, s.ID); derr != nil {
				r.log.Error("cleanup after failed create", "sandbox", s.ID, "err", derr)
			}
		}
	}()
	if s.Rootfs.UpperDir == "" {
		s.Rootfs.UpperDir = filepath.Join(dir, "upper")
	}
	for _, o := range s.Rootfs.Overlays {
		u, w := overlayDirs(s.Rootfs.UpperDir, o)
		if err := os.MkdirAll(u, 0o755); err != nil {
			return err
		}
		if err := os.MkdirAll(w, 0o700); err != nil {
			return err
		}
	}
	if r.cfg.Remap.Enabled() {
		if err := r.ownUpper(s); err != nil {
			return err
		}
		if err := r.openStateDir(dir); err != nil {
			return err
		}
	}
	if err := writeEtc(filepath.Join(dir, "etc"), s.Hostname, s.Network); err != nil {
		return err
	}
	rootfs := filepath.Join(dir, "rootfs")
	if err := os.Mkdir(rootfs, 0o755); err != nil {
		return err
	}
	if err := unix.Mount("overlay", rootfs, "overlay", 0, overlayData(s.Rootfs.UpperDir, s.Rootfs.Overlays[0])); err != nil {
		return fmt.Errorf("mount rootfs of %s: %w", s.ID, err)
	}
	if r.gvisor() {
		// The agent's socket directory, shared with the sandbox (see
		// waitSocket); only root may enter it.
		if err := os.Mkdir(filepath.Join(dir, "run"), 0o700); err != nil {
			return err
		}
	}
	if r.hostOverlays() {
		for _, o := range s.Rootfs.Overlays[1:] {
			m := hostMount(dir, o)
			if err := os.MkdirAll(m, 0o755); err != nil {
				return err
			}
			if err := unix.Mount("overlay", m, "overlay", 0, overlayData(s.Rootfs.UpperDir, o)); err != nil {
				return fmt.Errorf("mount %s of %s: %w", o.Target, s.ID, err)
			}
		}
	}
	spec, err := bundleSpec(s, dir, r.cfg.CgroupParent, r.cfg.Name == "runsc")
	if err != nil {
		return err
	}
	if r.cfg.Remap.Enabled() {
		remapSpec(spec, s, dir, r.cfg.Remap)
	}
	if prog != nil {
		spec.Linux.Seccomp = nil
		spec.Process.Args = append(spec.Process.Args, "--seccomp-fd", "4")
	}
	cfg, err := json.Marshal(spec) // read by runc only: indenting was most of its CPU in the create profile
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), cfg, 0o600); err != nil {
		return err
	}

	logf, err := os.OpenFile(filepath.Join(dir, "agent.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	global := r.globalArgs()
	if r.gvisor() && s.Network != nil {
		// gVisor's own network stack on the namespace's veth.
		global = withNetwork(global, "sandbox")
	}
	args := append(global, "run", "--detach", "--bundle", dir, "--pid-file", filepath.Join(dir, "pid"))
	var extra []*os.File
	if !r.gvisor() {
		// The agent's socket: made here, handed over as fd 3.
		l, err := net.ListenUnix("unix", &net.UnixAddr{Name: r.socketPath(s.ID), Net: "unix"})
		if err != nil {
			return err
		}
		l.SetUnlinkOnClose(false)
		lf, err := l.File()
		l.Close()
		if err != nil {
			return err
		}
		defer lf.Close()
		extra = []*os.File{lf}
		if prog != nil {
			pf, err := filterPipe(prog)
			if err != nil {
				return err
			}
			defer pf.Close()
			extra = append(extra, pf)
		}
		args = append(args, "--preserve-fds", strconv.Itoa(len(extra)))
	}
	cmd := exec.CommandContext(ctx, r.cfg.Binary, append(args, s.ID)...)
	cmd.ExtraFiles = extra
	cmd.Stdout, cmd.Stderr = logf, logf
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s run %s: %v: %s", r.Name(), s.ID, err, tail(filepath.Join(dir, "agent.log")))
	}
	if r.gvisor() {
		if err := r.waitSocket(ctx, s.ID); err != nil {
			return err
		}
	}
	r.log.Debug("sandbox started", "sandbox", s.ID, "took", time.Since(start))
	return nil
}

// agentStartTimeout bounds how long Create waits for the agent of a runsc
// sandbox to bind its socket.
const agentStartTimeout = 30 * time.Second

// waitSocket waits until the agent of runsc sandbox id listens on its
// socket. gVisor cannot accept on a listening socket handed in from the
// host (accept4 answers EINVAL), so under runsc the agent binds its own
// socket, in a directory shared with the host (runsc --host-uds=create
// makes it a host socket): it exists only once the agent runs, and takes
// connections only once it listens (bind comes first: connect is refused
// in between), so it is dialled, not looked for.
//
// Once it listens, the socket moves out of the shared directory: a hard
// link outside it (socketPath) reaches the same socket, and the name inside
// is removed, so that nothing in the sandbox can connect to the agent — not
// even root, whom CAP_DAC_OVERRIDE lets into the directory despite its mode
// 0700 (the escape battery checks).
func (r *Runtime) waitSocket(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(ctx, agentStartTimeout)
	defer cancel()
	for {
		if c, err := net.DialTimeout("unix", r.runSocketPath(id), time.Second); err == nil {
			c.Close()
			if err := os.Link(r.runSocketPath(id), r.socketPath(id)); err != nil {
				return fmt.Errorf("sandbox %s: move the agent's socket: %w", id, err)
			}
			return os.Remove(r.runSocketPath(id))
		}
		if in, err := r.State(ctx, id); err == nil && in.State != runtime.Running {
			return fmt.Errorf("sandbox %s stopped before its agent listened: %s", id, tail(filepath.Join(r.dir(id), "agent.log")))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("sandbox %s: the agent did not listen within %v: %s", id, agentStartTimeout, tail(filepath.Join(r.dir(id), "agent.log")))
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// tail returns the last lines of a log file, for error messages.
func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return strings.TrimSpace(string(b))
}

// writeEtc writes the per-sandbox files bind-mounted over /etc.
func writeEtc(dir, hostname string, nw *runtime.Network) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	files := map[string]string{
		"hostname":    hostname + "\n",
		"hosts":       "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t" + hostname + "\n",
		"resolv.conf": "# Chaser sandbox: loopback-only network, no DNS.\n",
	}
	if nw != nil {
		rc := "# Chaser sandbox: the DNS forwarder on this sandbox's gateway.\n"
		for _, ns := range nw.Nameservers {
			rc += "nameserver " + ns + "\n"
		}
		files["resolv.conf"] = rc
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// Delete implements runtime.Runtime. The order matters: kill every process
// of the sandbox first (the runtime's delete --force does kill + wait +
// cgroup removal), then unmount the rootfs nothing uses any more, then
// remove the state.
func (r *Runtime) Delete(ctx context.Context, id string) error {
	if !validID(id) {
		return fmt.Errorf("sandbox id %q: %w", id, errdefs.ErrInvalidArgument)
	}
	var errs []error
	if !r.gvisor() {
		// Every process at once, before runc kills the init alone and
		// waits for the kernel to kill the rest (a fork storm keeps
		// forking meanwhile, and runc gives up after 10 s).
		r.killAll(id)
	}
	start := time.Now()
	if _, err := r.run(ctx, "delete", "--force", id); err != nil && !notExist(err) {
		errs = append(errs, err)
	}
	if d := time.Since(start); d > 2*time.Second {
		r.log.Warn("slow runtime delete", "sandbox", id, "ms", d.Milliseconds())
	}
	// runc kills the sandbox's init and waits for it, but its other
	// processes leave their cgroups only once they have exited, which a
	// fork storm makes take longer than runc's own short retries (runc
	// delete then logs the failure and exits 0). runc also leaves the
	// cgroups of a container whose start failed or whose state went
	// missing. Wait for the cgroups to empty and remove them here.
	if err := r.removeCgroups(ctx, id); err != nil {
		errs = append(errs, err)
	}
	dir := r.dir(id)
	if err := unmountUnder(dir); err != nil {
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// unmountUnder unmounts every mount at or below dir, deepest first: the
// rootfs, runsc's host overlays, whatever a runtime left (runsc leaves an
// nsfs mount of the sandbox's network namespace). A busy mount is detached.
func unmountUnder(dir string) error {
	var errs []error
	for range 8 { // stacked mounts need more than one round
		points := mountPointsUnder(dir)
		if len(points) == 0 {
			break
		}
		for _, p := range points {
			err := unix.Unmount(p, 0)
			if errors.Is(err, unix.EBUSY) {
				err = unix.Unmount(p, unix.MNT_DETACH)
			}
			if err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
				errs = append(errs, fmt.Errorf("unmount %s: %w", p, err))
			}
		}
		if len(errs) > 0 {
			break
		}
	}
	return errors.Join(errs...)
}

// mountPointsUnder lists the mount points at or below dir, deepest first.
func mountPointsUnder(dir string) []string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var points []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		p := unescapeMount(f[4])
		if p == dir || strings.HasPrefix(p, dir+"/") {
			points = append(points, p)
		}
	}
	sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
	return points
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, "\\") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func notExist(err error) bool {
	s := err.Error()
	return strings.Contains(s, "does not exist") || strings.Contains(s, "not found") || strings.Contains(s, "no such file")
}

type runcState struct {
	ID     string `json:"id"`
	Pid    int    `json:"pid"`
	Status string `json:"status"`
}

func toInstance(st runcState) runtime.Instance {
	in := runtime.Instance{ID: st.ID, PID: st.Pid, State: runtime.Stopped}
	switch st.Status {
	case "running":
		in.State = runtime.Running
	case "paused": // frozen, by `runc pause` or the freezer cgroup
		in.State = runtime.Paused
	}
	return in
}

// State implements runtime.Runtime.
func (r *Runtime) State(ctx context.Context, id string) (runtime.Instance, error) {
	if !validID(id) {
		return runtime.Instance{}, fmt.Errorf("sandbox %q: %w", id, errdefs.ErrNotFound)
	}
	out, err := r.run(ctx, "state", id)
	if err != nil {
		if notExist(err) {
			if _, serr := os.Stat(r.dir(id)); serr == nil {
				return runtime.Instance{ID: id, State: runtime.Stopped}, nil
			}
			return runtime.Instance{}, fmt.Errorf("sandbox %s: %w", id, errdefs.ErrNotFound)
		}
		return runtime.Instance{}, err
	}
	var st runcState
	if err := json.Unmarshal(out, &st); err != nil {
		return runtime.Instance{}, fmt.Errorf("%s state %s: %w", r.Name(), id, err)
	}
	return r.instance(st), nil
}

// instance is what the runtime's state st means. runsc keeps saying
// "running" after gVisor's sandbox died — an OOM kill takes the whole
// sandbox, sentry included — so under runsc a sandbox whose process is gone
// or whose cgroup counted an OOM kill is Stopped.
func (r *Runtime) instance(st runcState) runtime.Instance {
	in := toInstance(st)
	in.OOMKilled = r.oomKilled(st.ID)
	if r.gvisor() && in.State == runtime.Running && (in.OOMKilled || !alive(in.PID)) {
		in.State = runtime.Stopped
	}
	return in
}

// alive tells whether process pid exists.
func alive(pid int) bool {
	return pid > 0 && unix.Kill(pid, 0) != unix.ESRCH
}

// oomKilled tells whether the memory cgroup of sandbox id counted an OOM
// kill: "oom_kill N" in memory.oom_control (v1) or memory.events (v2).
// The cgroup outlives the sandbox's init until Delete, so a sandbox whose
// init the OOM killer took still tells.
func (r *Runtime) oomKilled(id string) bool {
	for _, d := range r.cgroupDirs(id) {
		for _, f := range []string{"memory.oom_control", "memory.events"} {
			b, err := os.ReadFile(filepath.Join(d, f))
			if err != nil {
				continue
			}
			for _, line := range strings.Split(string(b), "\n") {
				if n, ok := strings.CutPrefix(line, "oom_kill "); ok && strings.TrimSpace(n) != "0" {
					return true
				}
			}
		}
	}
	return false
}

// List implements runtime.Runtime: the runtime's containers plus state
// directories and cgroups left without one.
func (r *Runtime) List(ctx context.Context) ([]runtime.Instance, error) {
	out, err := r.run(ctx, "list", "--format", "json")
	if err != nil {
		return nil, err
	}
	var sts []runcState
	if len(bytes.TrimSpace(out)) > 0 && string(bytes.TrimSpace(out)) != "null" {
		if err := json.Unmarshal(out, &sts); err != nil {
			return nil, fmt.Errorf("%s list: %w", r.Name(), err)
		}
	}
	seen := map[string]bool{}
	var list []runtime.Instance
	for _, st := range sts {
		seen[st.ID] = true
		list = append(list, r.instance(st))
	}
	entries, err := os.ReadDir(r.cfg.StateDir)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if e.IsDir() && validID(e.Name()) && !seen[e.Name()] {
			seen[e.Name()] = true
			list = append(list, runtime.Instance{ID: e.Name(), State: runtime.Stopped})
		}
	}
	for _, id := range r.cgroupRemnants() {
		if !seen[id] {
			list = append(list, runtime.Instance{ID: id, State: runtime.Stopped})
		}
	}
	return list, nil
}

// cgroupDirs returns the cgroup directories of sandbox id that exist, in
// every v1 hierarchy and the v2 one.
func (r *Runtime) cgroupDirs(id string) []string {
	v1, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", r.cfg.CgroupParent, id))
	dirs := v1
	if fi, err := os.Stat(filepath.Join("/sys/fs/cgroup", r.cfg.CgroupParent, id)); err == nil && fi.IsDir() {
		dirs = append(dirs, filepath.Join("/sys/fs/cgroup", r.cfg.CgroupParent, id))
	}
	return dirs
}

// cgroupDrainTimeout bounds how long Delete waits for the processes of a
// killed sandbox to leave its cgroups.
const cgroupDrainTimeout = 10 * time.Second

// removeCgroups removes the cgroups of sandbox id in every hierarchy. Only
// an empty cgroup can be removed (EBUSY otherwise), and a killed process
// stays in its cgroup until it has finished exiting, so it retries with a
// growing delay, as containerd does, for at most cgroupDrainTimeout (or
// until ctx ends). Each retry SIGKILLs whatever the cgroup still lists:
// after `runc delete --force` everything in it belongs to the sandbox
// being destroyed, and a process forked just before the kill may have
// escaped it.
func (r *Runtime) removeCgroups(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(ctx, cgroupDrainTimeout)
	defer cancel()
	delay := 5 * time.Millisecond
	for {
		var busy []string
		var errs []error
		for _, d := range r.cgroupDirs(id) {
			err := os.Remove(d)
			switch {
			case err == nil || errors.Is(err, os.ErrNotExist):
			case errors.Is(err, unix.EBUSY):
				busy = append(busy, d)
				killProcs(d)
			default:
				errs = append(errs, fmt.Errorf("remove cgroup %s: %w", d, err))
			}
		}
		if len(busy) == 0 || len(errs) > 0 {
			return errors.Join(errs...)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cgroups of sandbox %s still hold processes after %v: %s", id, cgroupDrainTimeout, strings.Join(busy, ", "))
		case <-time.After(delay):
		}
		delay = min(2*delay, 200*time.Millisecond)
	}
}

// killAll SIGKILLs every process of sandbox id through its cgroup v2
// cgroup.kill (Linux 5.14; on a hybrid host, the unified hierarchy has
// the sandbox's cgroup too): the kernel kills them all at once, forks
// under way included. Without cgroup.kill it freezes the v1 freezer
// cgroup, kills what it lists and thaws it, as runc's kill --all does.
// Best effort: runc's delete and removeCgroups follow.
func (r *Runtime) killAll(id string) {
	for _, d := range r.cgroupDirs(id) {
		if err := os.WriteFile(filepath.Join(d, "cgroup.kill"), []byte("1"), 0); err == nil {
			return
		}
	}
	freezer := filepath.Join("/sys/fs/cgroup/freezer", r.cfg.CgroupParent, id)
	state := filepath.Join(freezer, "freezer.state")
	if os.WriteFile(state, []byte("FROZEN"), 0) != nil {
		return
	}
	defer os.WriteFile(state, []byte("THAWED"), 0)
	for range 100 { // FREEZING until every task has stopped
		if b, err := os.ReadFile(state); err != nil || strings.TrimSpace(string(b)) == "FROZEN" {
			break
		}
		time.Sleep(time.Millisecond)
	}
	killProcs(freezer)
}

// killProcs sends SIGKILL to every process listed in cgroup dir.
func killProcs(dir string) {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return
	}
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
	}
}

// Close removes the runtime's cgroup parent in every hierarchy when no
// sandbox is left in it (runc makes parents but never removes them), and
// runsc's pin of the empty network namespace it gives its gofers: an nsfs
// bind mount at ROOT/null-netns, shared by the sandboxes of one --root
// (possibly stacked, by concurrent creates).
func (r *Runtime) Close() error {
	r.filter.mu.Lock()
	r.closed = true
	r.filter.mu.Unlock()
	r.filter.wg.Wait() // a probe sandbox is deleted before the cgroup parent below
	var errs []error
	if r.gvisor() {
		if err := unmountUnder(filepath.Join(r.cfg.RootDir, "null-netns")); err != nil {
			errs = append(errs, err)
		}
	}
	parents, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", r.cfg.CgroupParent))
	parents = append(parents, filepath.Join("/sys/fs/cgroup", r.cfg.CgroupParent))
	for _, p := range parents {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove cgroup %s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}

// cgroupRemnants returns ids of sandboxes that only a cgroup is left of.
func (r *Runtime) cgroupRemnants() []string {
	seen := map[string]bool{}
	var ids []string
	parents, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", r.cfg.CgroupParent))
	parents = append(parents, filepath.Join("/sys/fs/cgroup", r.cfg.CgroupParent))
	for _, p := range parents {
		entries, _ := os.ReadDir(p)
		for _, e := range entries {
			if e.IsDir() && validID(e.Name()) && !seen[e.Name()] {
				seen[e.Name()] = true
				ids = append(ids, e.Name())
			}
		}
	}
	return ids
}

// Dial implements runtime.Runtime.
func (r *Runtime) Dial(ctx context.Context, id string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", r.socketPath(id))
	if err != nil {
		// The error names the socket's host path: keep only its cause.
		var op *net.OpError
		if errors.As(err, &op) {
			err = op.Err
		}
		return nil, fmt.Errorf("sandbox %s agent: %v: %w", id, err, errdefs.ErrUnavailable)
	}
	return c, nil
}

// Stats implements runtime.Runtime from the runtime's cgroup statistics.
func (r *Runtime) Stats(ctx context.Context, id string) (runtime.Stats, error) {
	out, err := r.run(ctx, "events", "--stats", id)
	if err != nil {
		if notExist(err) {
			return runtime.Stats{}, fmt.Errorf("sandbox %s: %w", id, errdefs.ErrNotFound)
		}
		return runtime.Stats{}, err
	}
	var ev struct {
		Data struct {
			Memory struct {
				Usage struct {
					Usage int64 `json:"usage"`
				} `json:"usage"`
			} `json:"memory"`
			Pids struct {
				Current int64 `json:"current"`
			} `json:"pids"`
		} `json:"data"`
	}
	if err := json.Unmarshal(out, &ev); err != nil {
		return runtime.Stats{}, fmt.Errorf("%s events %s: %w", r.Name(), id, err)
	}
	return runtime.Stats{MemoryBytes: ev.Data.Memory.Usage.Usage, Pids: ev.Data.Pids.Current}, nil
}

// AgentLogTail implements runtime.AgentLogReader: the last 2000 bytes of
// the agent's log ("" without one, or for an invalid id).
func (r *Runtime) AgentLogTail(id string) string {
	if !validID(id) {
		return ""
	}
	return tail(filepath.Join(r.dir(id), "agent.log"))
}

// PID implements runtime.PIDReader: the host pid of the sandbox's process
// (runc: its init, the agent; runsc: gVisor's sandbox process), from the
// pid file `run --pid-file` wrote before it returned.
func (r *Runtime) PID(id string) (int, error) {
	b, err := os.ReadFile(filepath.Join(r.dir(id), "pid"))
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}
