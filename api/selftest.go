package api

// SelfTest is the answer of POST /v1/sessions/{id}/self-test: what a
// command inside the sandbox sees. Everything is measured inside: tools are
// found by running them.
type SelfTest struct {
	SessionID string `json:"session_id"`
	// Cwd is where commands start unless told otherwise.
	Cwd      string        `json:"cwd"`
	Home     string        `json:"home"`
	User     string        `json:"user"`
	Hostname string        `json:"hostname"`
	Path     []PathEntry   `json:"path"`
	Tools    []Tool        `json:"tools"`
	Shell    ShellInfo     `json:"shell"`
	OS       OSInfo        `json:"os"`
	Kernel   string        `json:"kernel"`
	Limits   SandboxLimits `json:"limits"`
	// Runtime is the isolation runtime (runc, runsc).
	Runtime string `json:"runtime"`
	// Platform is how the runtime runs the sandbox, where it has a choice:
	// gVisor's platform under runsc (systrap, ptrace); absent under runc.
	Platform string `json:"platform,omitempty"`
	// Env holds the Chaser markers set in every sandbox: CHASER,
	// CHASER_SESSION_ID, CHASER_WORKSPACE_ID (and CHASER_IMAGE,
	// CHASER_RUNTIME). A marker that is missing is absent from the map.
	Env        map[string]string `json:"env"`
	DurationMS int64             `json:"duration_ms"`
	// Network is the sandbox's network mode and whether a name resolves.
	Network *SelfTestNetwork `json:"network,omitempty"`
}

// SelfTestNetwork is the network part of a self-test.
type SelfTestNetwork struct {
	// Mode is the session's network mode (none, internet).
	Mode string `json:"mode"`
	// DNS is "ok" when DNSName resolved inside the sandbox, "none" when
	// its resolv.conf names no nameserver (mode none), else "failed: …".
	DNS     string `json:"dns"`
	DNSName string `json:"dns_name,omitempty"`
}

// PathEntry is one directory of PATH.
type PathEntry struct {
	Dir    string `json:"dir"`
	Exists bool   `json:"exists"`
}

// Tool is one program looked for. Found is false when it is not on PATH or
// does not run; Version is the first line it printed for its version flag.
type Tool struct {
	Name    string `json:"name"`
	Found   bool   `json:"found"`
	Path    string `json:"path,omitempty"`
	Version string `json:"version,omitempty"`
	Error   string `json:"error,omitempty"`
}

// ShellInfo describes the shell used for commands and terminals.
type ShellInfo struct {
	Path    string `json:"path"`
	Version string `json:"version,omitempty"`
	// Config lists the start-up files present for a login shell.
	Config []string `json:"config"`
}

// OSInfo comes from /etc/os-release.
type OSInfo struct {
	ID      string `json:"id,omitempty"`
	Name    string `json:"name,omitempty"`
	Version string `json:"version,omitempty"`
}

// SandboxLimits are the resource limits seen from inside (cgroups), or,
// for a limit the sandbox does not show (gVisor's cgroup view shows none),
// the one the server set; zero or nil means unlimited or unknown.
type SandboxLimits struct {
	CPUs        float64 `json:"cpus,omitempty"`
	MemoryBytes int64   `json:"memory_bytes,omitempty"`
	Pids        int64   `json:"pids,omitempty"`
	// OnlineCPUs is the number of CPUs the kernel shows.
	OnlineCPUs int `json:"online_cpus"`
}
