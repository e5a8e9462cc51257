// Package runtime defines how Chaser drives an isolation runtime. A runtime
// does lifecycle only — create, delete, state, list, stats — and hands back
// a connection to the agent inside the sandbox; everything that happens
// inside (exec, PTY, files, dialling ports) is the agent's job, so it
// behaves the same under every runtime. runtime/oci implements it with runc
// and runsc; every implementation passes runtimetest.Run.
package runtime

import (
	"context"
	"net"
)

// Spec describes a sandbox to create.
type Spec struct {
	// ID names the sandbox; it is unique on the host.
	ID       string
	Hostname string
	Rootfs   Rootfs
	// Env is the environment of the agent, inherited by every command.
	Env    []string
	Limits Limits
	// AgentPath is the host path of the chaser binary; the sandbox runs
	// `AgentPath agent` as its init.
	AgentPath string
	// Network, when set, puts the sandbox in an existing network namespace
	// (made by internal/network) instead of a fresh loopback-only one.
	Network *Network
}

// Network is the network a sandbox with egress joins.
type Network struct {
	// NSPath is the network namespace to join.
	NSPath string
	// Nameservers go into the sandbox's /etc/resolv.conf.
	Nameservers []string
}

// Rootfs is a stack of read-only layers under one writable directory.
type Rootfs struct {
	// Overlays are mounted in order; the first has Target "/". Each
	// stacks its Lower directories (topmost first) under its own writable
	// directory inside UpperDir.
	Overlays []Overlay
	// UpperDir holds every writable layer of the sandbox. The runtime
	// never deletes it when it lies outside the runtime's own state (a
	// workspace keeps it between sessions).
	UpperDir string
}

// Overlay is one overlay mount of the root filesystem.
type Overlay struct {
	Target string   // path in the sandbox: "/" or e.g. "/usr"
	Lower  []string // host directories, topmost first
}

// Limits bound a sandbox's resources; zero means no limit.
type Limits struct {
	MemoryBytes int64
	MilliCPUs   int64 // 1000 = one core
	Pids        int64
	// DiskBytes sizes the writable disk of runtimes that make their own
	// (DiskOwner); others get a writable layer the service bounds.
	DiskBytes int64
}

// DiskOwner is implemented by runtimes whose sandboxes write to a disk
// image of their own, sized by Limits.DiskBytes (microvm): that image is
// the quota, so the service gives them a plain upper directory.
type DiskOwner interface{ OwnsDisk() }

// LoopbackOnly is implemented by runtimes whose sandboxes have loopback
// only and cannot join a Spec.Network: the service gives their sessions
// network mode none, and Create refuses a Spec with a Network. (No
// built-in runtime is one since microvm VMs got a NIC.)
type LoopbackOnly interface{ LoopbackOnly() }

// PIDReader is implemented by runtimes that know the host pid of a
// running sandbox's process (the PID State reports) without running their
// CLI: the service watches that process from the moment a sandbox is
// created, and a `runc state` there would compete with the sandbox's first
// command for the CPU.
type PIDReader interface {
	PID(id string) (int, error)
}

// AgentLogReader is implemented by runtimes that keep a sandbox's agent's
// own output (its stderr: a Go runtime's fatal error, a panic): the last
// of it says why a sandbox's process exited.
type AgentLogReader interface {
	AgentLogTail(id string) string
}

// State is the lifecycle state of a sandbox as the runtime sees it.
type State string

// States reported by runtimes.
const (
	Running State = "running"
	// Paused: its processes exist but are frozen (the cgroup freezer, as
	// `runc pause` does it). Whatever froze it, it is not dead: its agent
	// may come back, or stay silent (agent_unresponsive).
	Paused  State = "paused"
	Stopped State = "stopped" // exists (or left state behind) but does not run
)

// Live reports whether the sandbox's processes still exist: it runs or is
// paused.
func (s State) Live() bool { return s == Running || s == Paused }

// Instance is a sandbox known to the runtime.
type Instance struct {
	ID    string
	State State
	PID   int
	// OOMKilled tells that the kernel's OOM killer killed a process of the
	// sandbox for want of memory (reported by State).
	OOMKilled bool
}

// Stats are resource figures of a running sandbox.
type Stats struct {
	MemoryBytes int64
	Pids        int64
}

// Runtime creates and destroys sandboxes.
type Runtime interface {
	// Name is "runc", "runsc", ...
	Name() string
	// Create creates and starts a sandbox with the agent as its init. On
	// error nothing of the sandbox is left behind.
	Create(ctx context.Context, spec Spec) error
	// Delete kills the sandbox and releases everything it held: processes,
	// mounts, cgroups, state. Deleting a missing sandbox is not an error.
	Delete(ctx context.Context, id string) error
	// State returns a sandbox's state, or errdefs.ErrNotFound.
	State(ctx context.Context, id string) (Instance, error)
	// List returns every sandbox this runtime holds, including remnants of
	// ones that died (State Stopped), so recovery can release them.
	List(ctx context.Context) ([]Instance, error)
	// Dial connects to the sandbox's agent.
	Dial(ctx context.Context, id string) (net.Conn, error)
	// Stats reports resource use, or errdefs.ErrNotFound.
	Stats(ctx context.Context, id string) (Stats, error)
}

// Closer is implemented by runtimes that keep host state of their own
// beyond their sandboxes (say a cgroup parent). Close is called at a
// graceful shutdown, after the last sandbox was deleted.
type Closer interface {
	Close() error
}
