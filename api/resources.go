package api

// Resources are what one sandbox may use, as the session object shows them.
// CPU is in cores (0.5 is half a core); MemoryMB and DiskMB are in MiB.
// Disk is the size of the writable layer.
type Resources struct {
	CPU      float64 `json:"cpu"`
	MemoryMB int64   `json:"memory_mb"`
	DiskMB   int64   `json:"disk_mb"`
	Pids     int64   `json:"pids"`
}

// ResourceRequest asks for resources when creating a session or a
// workspace. Each field is optional: what is left out comes from the
// tier's defaults. Asking for more than the tier's maximum is refused
// (403, naming the limit); a value that is not positive is malformed (400).
type ResourceRequest struct {
	CPU      *float64 `json:"cpu,omitempty"`
	MemoryMB *int64   `json:"memory_mb,omitempty"`
	DiskMB   *int64   `json:"disk_mb,omitempty"`
	Pids     *int64   `json:"pids,omitempty"`
}

// Empty tells whether r asks for nothing.
func (r *ResourceRequest) Empty() bool {
	return r == nil || r.CPU == nil && r.MemoryMB == nil && r.DiskMB == nil && r.Pids == nil
}

// Network modes.
const (
	NetworkNone     = "none"     // loopback only
	NetworkInternet = "internet" // egress to public addresses
)

// Network is a sandbox's network policy: Mode, and CIDRs egress may
// (Allow) or may not (Deny) reach.
type Network struct {
	Mode  string   `json:"mode"`
	Allow []string `json:"allow,omitempty"`
	Deny  []string `json:"deny,omitempty"`
}
