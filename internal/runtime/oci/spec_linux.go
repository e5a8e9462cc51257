package oci

import (
	"path/filepath"
	"strings"
	"sync"

	"github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/chaserhq/chaser/internal/runtime"
)

// agentDir is where the agent binary appears inside every sandbox.
const agentDir = "/.chaser"

// AgentBinary is the sandbox path of the agent.
const AgentBinary = agentDir + "/agent"

// agentRunDir is where a runsc sandbox's agent binds its socket: a bind
// mount of the host directory the server dials it in.
const agentRunDir = agentDir + "/run"

// defaultCaps is the runtime's default capability set: Docker's without
// CAP_NET_RAW. Raw and packet sockets let root in a sandbox forge packets
// on its veth and reach the kernel's packet-socket code (CVE-2020-14386,
// CVE-2016-8655), for nothing a sandbox needs: ping uses an ICMP datagram
// socket instead (pingGroupRange). The escape battery
// (integration/escape_test.go) checks both kinds are refused.
var defaultCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// pingGroupRange lets every user of a sandbox open ICMP datagram sockets
// (what ping uses without CAP_NET_RAW), in its own network namespace, as
// Docker does.
var pingGroupRange = map[string]string{"net.ipv4.ping_group_range": "0 2147483647"}

var maskedPaths = []string{
	"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
	"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
	"/sys/firmware", "/sys/devices/virtual/powercap",
}

var readonlyPaths = []string{
	"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
}

// overlayDirs returns the writable and work directories of overlay o
// inside upper.
func overlayDirs(upper string, o runtime.Overlay) (upperDir, workDir string) {
	name := overlayName(o)
	return filepath.Join(upper, name, "upper"), filepath.Join(upper, name, "work")
}

func overlayData(upper string, o runtime.Overlay) string {
	u, w := overlayDirs(upper, o)
	return "lowerdir=" + strings.Join(o.Lower, ":") + ",upperdir=" + u + ",workdir=" + w
}

// overlayName names overlay o's directories (inside the upper directory and,
// under runsc, its mount point in the state directory).
func overlayName(o runtime.Overlay) string {
	if o.Target == "/" {
		return "root"
	}
	return strings.ReplaceAll(strings.Trim(o.Target, "/"), "/", "_")
}

// hostMount is where the overlay o is mounted on the host, in state
// directory dir, for runsc, which mounts no overlays itself: it gets a bind
// mount of this directory instead.
func hostMount(dir string, o runtime.Overlay) string {
	return filepath.Join(dir, "mnt", overlayName(o))
}

// bundleSpec builds the OCI config of a sandbox. dir is its state directory
// (holding the generated /etc files). gvisor makes it for runsc: overlays
// beyond the root are bind mounts of host mounts (hostMount), and the pids
// limit leaves room for the sentry's own tasks.
func bundleSpec(s runtime.Spec, dir, cgroupParent string, gvisor bool) (*specs.Spec, error) {
	caps := append([]string(nil), defaultCaps...)
	spec := &specs.Spec{
		Version: "1.0.2",
		Process: &specs.Process{
			User:            specs.User{UID: 0, GID: 0},
			Args:            []string{AgentBinary, "agent"},
			Env:             s.Env,
			Cwd:             "/",
			NoNewPrivileges: true,
			Capabilities: &specs.LinuxCapabilities{
				Bounding: caps, Effective: caps, Permitted: caps,
			},
		},
		Root:     &specs.Root{Path: "rootfs"},
		Hostname: s.Hostname,
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
			{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
			{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
			{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}},
		},
		Linux: &specs.Linux{
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace}, {Type: specs.NetworkNamespace}, {Type: specs.IPCNamespace},
				{Type: specs.UTSNamespace}, {Type: specs.MountNamespace}, {Type: specs.CgroupNamespace},
			},
			CgroupsPath:   filepath.Join("/", cgroupParent, s.ID),
			Resources:     resources(s.Limits),
			MaskedPaths:   maskedPaths,
			ReadonlyPaths: readonlyPaths,
			Sysctl:        pingGroupRange,
		},
	}
	// Egress (issue 15): join the namespace internal/network made.
	if s.Network != nil {
		for i, ns := range spec.Linux.Namespaces {
			if ns.Type == specs.NetworkNamespace {
				spec.Linux.Namespaces[i].Path = s.Network.NSPath
			}
		}
	}
	if gvisor {
		// gVisor ignores readonlyPaths (its /proc is its own), so root
		// could open /proc/sys and /proc/sysrq-trigger for writing and
		// change the sentry's sysctls (fs.nr_open, …). A read-only /proc
		// makes them EROFS as under runc; what it costs: writes to
		// /proc/self (oom_score_adj, comm), which gVisor, with no OOM
		// killer of its own, would ignore anyway. Magic links
		// (/proc/self/fd/N, /dev/stdout) still open their targets.
		spec.Mounts[0].Options = append(spec.Mounts[0].Options, "ro")
		spec.Process.Args = append(spec.Process.Args, "--socket", agentRunDir+"/agent.sock")
		spec.Mounts = append(spec.Mounts, specs.Mount{
			Destination: agentRunDir, Type: "bind", Source: filepath.Join(dir, "run"), Options: []string{"rbind", "rw", "nosuid", "nodev", "noexec"},
		})
	}
	if gvisor && s.Limits.Pids > 0 {
		p := s.Limits.Pids + sentryTasks
		spec.Linux.Resources.Pids = &specs.LinuxPids{Limit: &p}
	}
	for _, o := range s.Rootfs.Overlays[1:] {
		if gvisor {
			spec.Mounts = append(spec.Mounts, specs.Mount{
				Destination: o.Target, Type: "bind", Source: hostMount(dir, o), Options: []string{"rbind", "rw"},
			})
			continue
		}
		spec.Mounts = append(spec.Mounts, specs.Mount{
			Destination: o.Target, Type: "overlay", Source: "overlay",
			Options: []string{overlayData(s.Rootfs.UpperDir, o)},
		})
	}
	spec.Mounts = append(spec.Mounts,
		specs.Mount{Destination: AgentBinary, Type: "bind", Source: s.AgentPath, Options: []string{"rbind", "ro", "nosuid", "nodev"}},
		specs.Mount{Destination: "/etc/hostname", Type: "bind", Source: filepath.Join(dir, "etc", "hostname"), Options: []string{"bind", "ro"}},
		specs.Mount{Destination: "/etc/hosts", Type: "bind", Source: filepath.Join(dir, "etc", "hosts"), Options: []string{"bind", "ro"}},
		specs.Mount{Destination: "/etc/resolv.conf", Type: "bind", Source: filepath.Join(dir, "etc", "resolv.conf"), Options: []string{"bind", "ro"}},
	)
	sc, err := SeccompProfile(gvisor)
	if err != nil {
		return nil, err
	}
	spec.Linux.Seccomp = sc
	return spec, nil
}

var profiles struct {
	once       sync.Once
	runc, gvsr *specs.LinuxSeccomp
	err        error
}

// SeccompProfile returns the seccomp profile of every sandbox of a runtime
// (gvisor: runsc's): Docker's default for the capabilities sandboxes get
// (defaultCaps), which is all it depends on. It is built once; callers
// must not change it.
func SeccompProfile(gvisor bool) (*specs.LinuxSeccomp, error) {
	profiles.once.Do(func() {
		spec := &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{
			Bounding: defaultCaps, Effective: defaultCaps, Permitted: defaultCaps,
		}}}
		if profiles.runc, profiles.err = seccomp.GetDefaultProfile(spec); profiles.err != nil {
			return
		}
		if profiles.gvsr, profiles.err = seccomp.GetDefaultProfile(spec); profiles.err != nil {
			return
		}
		enosysByTrace(profiles.gvsr)
	})
	if gvisor {
		return profiles.gvsr, profiles.err
	}
	return profiles.runc, profiles.err
}

// enosysByTrace rewrites the rules of profile sc that answer ENOSYS
// (Docker's profile refuses clone3 so, as its flags cannot be inspected,
// and glibc then falls back to clone, whose flags are) for gVisor, which
// ignores errnoRet and answers EPERM instead: glibc does not fall back on
// EPERM, and no thread could start (Python's "can't start new thread").
// SCMP_ACT_TRACE answers ENOSYS when no tracer asks for seccomp events.
// A process that ptraces another with PTRACE_O_TRACESECCOMP can let the
// traced clone3 run, which gVisor does not filter again: it can make a
// user namespace, of gVisor's own kernel (the host's is out of its reach).
func enosysByTrace(sc *specs.LinuxSeccomp) {
	for i, r := range sc.Syscalls {
		if r.Action == specs.ActErrno && r.ErrnoRet != nil && *r.ErrnoRet == uint(unix.ENOSYS) {
			sc.Syscalls[i].Action, sc.Syscalls[i].ErrnoRet = specs.ActTrace, nil
		}
	}
}

func resources(l runtime.Limits) *specs.LinuxResources {
	r := &specs.LinuxResources{
		Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
	}
	if l.MemoryBytes > 0 {
		m := l.MemoryBytes
		r.Memory = &specs.LinuxMemory{Limit: &m}
	}
	if l.MilliCPUs > 0 {
		period := uint64(100000)
		quota := l.MilliCPUs * int64(period) / 1000
		r.CPU = &specs.LinuxCPU{Period: &period, Quota: &quota}
	}
	if l.Pids > 0 {
		p := l.Pids
		r.Pids = &specs.LinuxPids{Limit: &p}
	}
	return r
}
