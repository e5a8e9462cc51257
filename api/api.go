// Package api holds Chaser's wire contract: the JSON request and response
// bodies of the HTTP API. The server, the typed client, the CLI and the tests
// all use these types, so the contract lives in one place.
package api

import "time"

// Session types.
const (
	SessionTypeSandbox = "sandbox"
)

// Session statuses.
const (
	StatusStarting = "starting"
	StatusRunning  = "running"
	StatusStopping = "stopping"
	StatusFailed   = "failed"  // ended on its own: Reason is died, oom or agent_unresponsive
	StatusStopped  = "stopped" // ended as asked or by policy: Reason is deleted, expired or idle
)

// Reasons a session ended (Session.Reason).
const (
	ReasonDeleted           = "deleted"            // DELETE /v1/sessions/{id}
	ReasonExpired           = "expired"            // its TTL passed
	ReasonIdle              = "idle"               // unused for the tier's idle timeout
	ReasonDied              = "died"               // its sandbox stopped (its agent, the init, exited)
	ReasonOOM               = "oom"                // its sandbox was killed for want of memory
	ReasonAgentUnresponsive = "agent_unresponsive" // its agent stopped answering health checks
)

// Tiers.
const (
	TierFree = "free"
	TierPaid = "paid"
)

// Session is one sandbox and its lifecycle.
type Session struct {
	ID          string    `json:"id"`
	Type        string    `json:"type"`
	Status      string    `json:"status"`
	WorkspaceID *string   `json:"workspace_id"`
	Image       string    `json:"image"`
	Ephemeral   bool      `json:"ephemeral"`
	Runtime     string    `json:"runtime"`
	CreatedAt   time.Time `json:"created_at"`
	ExpiresAt   time.Time `json:"expires_at"`
	// Reason says why the session ended (Reason*); empty while it lives.
	Reason string `json:"reason,omitempty"`
	// EndedAt is when it ended.
	EndedAt *time.Time `json:"ended_at,omitempty"`
	// AccountID is the owner, shown in an admin's ?all=true list.
	AccountID string `json:"account_id,omitempty"`
	// Resources are the sandbox's resources: those asked for, the rest
	// from the tier's defaults (or the workspace's).
	Resources *Resources `json:"resources,omitempty"`
	// Network is the sandbox's network policy.
	Network *Network `json:"network,omitempty"`
}

// CreateSessionRequest is the body of POST /v1/sessions.
type CreateSessionRequest struct {
	Type      string `json:"type"`
	Ephemeral bool   `json:"ephemeral,omitempty"`
	Image     string `json:"image,omitempty"`
	Workspace string `json:"workspace,omitempty"`
	// Resources asks for resources other than the tier's defaults. Not
	// with Workspace: a workspace fixes its resources when it is created.
	// Without a workspace it makes a throwaway sandbox, as Image does.
	Resources *ResourceRequest `json:"resources,omitempty"`
	// Network asks for a network policy: mode none (loopback only) or
	// internet (egress through the host's NAT, never to the host, other
	// sandboxes, link-local or, unless the tier allows them, private
	// ranges), with allow and deny CIDRs. Without it the tier's mode.
	Network *Network `json:"network,omitempty"`
}

// SessionList is the body of GET /v1/sessions.
type SessionList struct {
	Sessions []Session `json:"sessions"`
	// NextToken, when set, fetches the next page (?next_token=…); it is
	// absent on the last page.
	NextToken string `json:"next_token,omitempty"`
}

// ExecRequest is the body of POST /v1/exec and POST /v1/sessions/{id}/exec.
// Background and Stream apply only to the session-scoped endpoint.
type ExecRequest struct {
	// Command is a command line, run with the sandbox's shell (bash, else
	// /bin/sh). Argv instead runs a program directly, without a shell
	// (argv[0] found on the PATH unless it holds a /): the way to run
	// anything in an image without /bin/sh. Exactly one of them is given.
	Command string   `json:"command,omitempty"`
	Argv    []string `json:"argv,omitempty"`
	// User runs the command as another user than the image's: a name
	// or uid, optionally :group or :gid ("root", "1000:1000"), resolved
	// with the sandbox's own /etc/passwd and /etc/group.
	User      string `json:"user,omitempty"`
	Workspace string `json:"workspace,omitempty"`
	Image     string `json:"image,omitempty"` // POST /v1/exec: a throwaway sandbox of this image; not with Workspace
	// Ephemeral makes POST /v1/exec use a fresh throwaway sandbox even
	// when the account has a default workspace.
	Ephemeral  bool              `json:"ephemeral,omitempty"`
	Cwd        string            `json:"cwd,omitempty"`
	Env        map[string]string `json:"env,omitempty"`
	TimeoutMS  int64             `json:"timeout_ms,omitempty"`
	Stdin      *string           `json:"stdin,omitempty"`
	Background bool              `json:"background,omitempty"`
	Stream     bool              `json:"stream,omitempty"`
	// StdinOpen keeps a background command's stdin open for POST .../stdin.
	// It defaults to true for background commands without Stdin.
	StdinOpen *bool `json:"stdin_open,omitempty"`
}

// ExecResult is the answer of a synchronous exec.
type ExecResult struct {
	SessionID       string  `json:"session_id"`
	WorkspaceID     *string `json:"workspace_id"`
	CommandID       string  `json:"command_id"`
	ExitCode        int     `json:"exit_code"`
	Stdout          string  `json:"stdout"`
	Stderr          string  `json:"stderr"`
	DurationMS      int64   `json:"duration_ms"`
	TimedOut        bool    `json:"timed_out"`
	OutputTruncated bool    `json:"output_truncated,omitempty"`
}

// BackgroundStarted is the 202 answer of a background exec.
type BackgroundStarted struct {
	SessionID string `json:"session_id"`
	CommandID string `json:"command_id"`
}

// Event is one line of an NDJSON exec stream. Type is "stdout", "stderr",
// "gap", "exit" or "error". Data holds output; when it is not valid UTF-8 it is
// base64 and Encoding is "base64", so binary output survives losslessly.
type Event struct {
	Type     string `json:"type"`
	Data     string `json:"data,omitempty"`
	Encoding string `json:"encoding,omitempty"`
	ExitCode *int   `json:"exit_code,omitempty"`
	TimedOut bool   `json:"timed_out,omitempty"`
	Signal   string `json:"signal,omitempty"`
	Message  string `json:"message,omitempty"`
	// Offset and Size give the byte range of the combined output that a
	// "gap" event reports as dropped: the reader fell further behind than
	// the kept output reaches. Resume-safe offsets for ?offset=.
	Offset *int64 `json:"offset,omitempty"`
	Size   int64  `json:"size,omitempty"`
	// OutputTruncated is set on the exit event when the stream had gaps.
	OutputTruncated bool `json:"output_truncated,omitempty"`
}

// Command statuses.
const (
	CommandRunning = "running"
	CommandExited  = "exited"
)

// Command describes a command run in a session.
type Command struct {
	ID         string     `json:"id"`
	Command    string     `json:"command"`
	Cwd        string     `json:"cwd"`
	Status     string     `json:"status"`
	PID        int        `json:"pid"`
	ExitCode   *int       `json:"exit_code"`
	Signal     string     `json:"signal,omitempty"`
	TimedOut   bool       `json:"timed_out"`
	Background bool       `json:"background"`
	StartedAt  time.Time  `json:"started_at"`
	ExitedAt   *time.Time `json:"exited_at,omitempty"`
	OutputSize int64      `json:"output_size"`
	// OutputStart is the offset of the oldest output still kept: output is
	// bounded per command and the oldest bytes are dropped first.
	OutputStart int64 `json:"output_start"`
	// CommandTruncated is set in lists, which cut command texts to
	// MaxListedCommand bytes; GET …/commands/{cid} has the whole text.
	CommandTruncated bool `json:"command_truncated,omitempty"`
}

// MaxListedCommand is how many bytes of a command's text a list shows.
const MaxListedCommand = 1024

// CommandList is the body of GET /v1/sessions/{id}/commands: one page,
// oldest first. NextToken, when set, fetches the next page
// (?next_token=…); it is absent on the last page.
type CommandList struct {
	Commands  []Command `json:"commands"`
	NextToken string    `json:"next_token,omitempty"`
}

// StdinRequest is the body of POST .../commands/{cid}/stdin. Data is text,
// or base64 when Encoding is "base64". EOF closes stdin after Data.
type StdinRequest struct {
	Data     string `json:"data"`
	Encoding string `json:"encoding,omitempty"`
	EOF      bool   `json:"eof,omitempty"`
}

// SignalRequest is the body of POST .../commands/{cid}/signal: a name such as
// "TERM", "SIGKILL" or "INT".
type SignalRequest struct {
	Signal string `json:"signal"`
}

// Account is an account as shown to its owner or an admin.
type Account struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Tier      string    `json:"tier"`
	Admin     bool      `json:"admin"`
	CreatedAt time.Time `json:"created_at"`
	// APIKey is set only in the answer that created the account: keys are
	// stored hashed and cannot be shown again.
	APIKey string `json:"api_key,omitempty"`
}

// AccountList is the body of GET /v1/accounts (admin only).
type AccountList struct {
	Accounts []Account `json:"accounts"`
}

// CreateAccountRequest is the body of POST /v1/accounts (admin only).
type CreateAccountRequest struct {
	Name string `json:"name"`
	Tier string `json:"tier"`
}

// ErrorBody is the body of every error answer.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail names the error class (a code such as "not_found") and says
// what went wrong.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}
