// Package oci runs sandboxes with an OCI runtime CLI (runc, or runsc for
// gVisor) from a bundle whose config.json is built with
// opencontainers/runtime-spec. It never creates namespaces or cgroups itself.
//
// Each sandbox has a state directory STATE/ID holding the bundle
// (config.json, rootfs mount point), the generated /etc files, the agent's
// log and the agent's socket. The socket is created here, on the host, and
// its listening descriptor is passed into the sandbox (--preserve-fds), so
// nothing inside the sandbox can see or replace the host path the server
// dials.
package oci

import (
	"log/slog"

	"github.com/chaserhq/chaser/internal/runtime"
	"github.com/chaserhq/chaser/internal/userns"
)

// Config configures a Runtime.
type Config struct {
	// Name is the runtime: "runc" (default) or "runsc" (gVisor).
	Name string
	// Binary is the runtime CLI, a path or a name looked up on PATH; the
	// default is Name.
	Binary string
	// Platform is runsc's --platform (default systrap); runc has none.
	Platform string
	// StateDir holds one directory per sandbox.
	StateDir string
	// RootDir is the runtime CLI's own state (--root).
	RootDir string
	// CgroupParent is the cgroup under which sandboxes are placed.
	CgroupParent string
	// CPUShares, when not 0, is the CPU weight New gives CgroupParent
	// (cgroup v1 cpu.shares; see weighParent).
	CPUShares uint64
	// Remap, when enabled, runs runc sandboxes in a user namespace whose
	// root is Remap.Base on the host (--userns-remap; userns_linux.go).
	// The images they run must come from a store with the same remap.
	// runsc has its own kernel between root and the host and refuses it.
	Remap userns.Remap
	Log   *slog.Logger
}

// RunscModule is the gVisor release Chaser is tested with: older runsc
// builds (Debian's) lack the systrap platform and mishandle networking in a
// network namespace. Operators install it with `go install` (RunscInstall).
const RunscModule = "gvisor.dev/gvisor/runsc@v0.0.0-20260905035102-160fafc42237"

// RunscInstall is the command that installs runsc where the server looks
// for it by default (RunscCache).
const RunscInstall = "CGO_ENABLED=0 GOBIN=" + RunscCache + " go install " + RunscModule

// RunscCache is the directory the setup scripts build runsc into; the
// server looks there when runsc is not on PATH.
const RunscCache = "/var/cache/chaser-runsc"

var (
	_ runtime.Runtime = (*Runtime)(nil)
	_ runtime.Closer  = (*Runtime)(nil)
)
