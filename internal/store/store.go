// Package store defines the persistent state of the control plane —
// accounts, API keys and sessions — behind a small interface. The embedded
// SQLite implementation lives in store/sqlite; every implementation passes
// storetest.Run.
package store

import (
	"context"
	"time"

	"github.com/chaserhq/chaser/internal/paging"
)

// Account owns keys and sessions.
type Account struct {
	ID        string
	Name      string
	Tier      string
	Admin     bool
	CreatedAt time.Time
}

// APIKey is an API key as stored: its public id and the hash of its secret
// part. The secret itself is never stored.
type APIKey struct {
	ID        string
	AccountID string
	Hash      string
	CreatedAt time.Time
}

// Session is the stored record of a sandbox session.
type Session struct {
	ID          string
	AccountID   string
	Type        string
	Status      string
	Image       string
	Runtime     string
	WorkspaceID *string
	Ephemeral   bool
	CreatedAt   time.Time
	ExpiresAt   time.Time
	// Reason says why the session ends or ended (api.Reason*); set when
	// its teardown begins.
	Reason string
	// EndedAt is when the session ended; nil while it lives. An ended
	// session keeps its record (for GetSession) until PruneSessions.
	EndedAt *time.Time
	// Resources are the sandbox's resources (all zero for sessions made
	// before they were recorded).
	Resources Resources
	// E2B is what the E2B-compatible front end keeps of a sandbox made
	// through it (its JSON: template, metadata, envVars); empty for
	// others. The store does not read it.
	E2B string
	// Network is the sandbox's network policy (zero: mode none).
	Network Network
	// SandboxID is the runtime's id of the session's sandbox when it is
	// not the session's own: a sandbox made ahead by the warm pool and
	// claimed by the session. Empty means ID (see Sandbox).
	SandboxID string
}

// Sandbox is the runtime's id of x's sandbox: SandboxID, else the
// session's id.
func (x Session) Sandbox() string {
	if x.SandboxID != "" {
		return x.SandboxID
	}
	return x.ID
}

// Network is a sandbox's network policy as asked and granted: Mode
// ("none", "internet"; "" is none for a session, the tier's for a
// workspace) and the session's own allow and deny CIDRs.
type Network struct {
	Mode  string   `json:"mode,omitempty"`
	Allow []string `json:"allow,omitempty"`
	Deny  []string `json:"deny,omitempty"`
}

// Resources are the resources of a sandbox. In a workspace, a zero field
// was not asked for: its sessions take the tier's default.
type Resources struct {
	MilliCPUs int64 // 1000 = one core
	MemoryMB  int64 // MiB
	DiskMB    int64 // MiB of writable layer
	Pids      int64
}

// Workspace is a persistent writable layer that sessions run on, one at a
// time.
type Workspace struct {
	ID          string
	AccountID   string
	Name        string
	SessionType string
	Image       string
	CreatedAt   time.Time
	// Resources are those asked for at creation; every session on the
	// workspace gets them.
	Resources Resources
	// Network is the network asked for at creation; every session on
	// the workspace gets it.
	Network Network
}

// Store persists the control plane's state. Methods return
// errdefs.ErrNotFound for missing records and errdefs.ErrAlreadyExists for
// duplicates.
type Store interface {
	// CreateAccount stores an account and its first API key. Account
	// names are unique.
	CreateAccount(ctx context.Context, a Account, key APIKey) error
	// KeyByID returns an API key and the account that owns it.
	KeyByID(ctx context.Context, keyID string) (APIKey, Account, error)
	// ListAccounts returns every account, oldest first.
	ListAccounts(ctx context.Context) ([]Account, error)
	// DeleteAccount forgets an account with its keys, its ended sessions,
	// its workspaces' records and defaults. An account with a live session
	// is refused (ErrFailedPrecondition) and stays as it was.
	DeleteAccount(ctx context.Context, id string) error

	// CreateSession refuses (ErrAlreadyExists) a second live session on
	// the same workspace: at most one session runs on a workspace.
	CreateSession(ctx context.Context, s Session) error
	// GetSession returns a session, live or ended (until pruned).
	GetSession(ctx context.Context, id string) (Session, error)
	// ListSessions returns an account's live sessions, oldest first; all
	// live sessions when accountID is empty. Ended sessions are left out.
	ListSessions(ctx context.Context, accountID string) ([]Session, error)
	// ListSessionsPage returns at most limit of what ListSessions
	// returns, those after the cursor (CreatedAt, ID) of the previous
	// page's last session: a keyset page.
	ListSessionsPage(ctx context.Context, accountID string, after paging.Cursor, limit int) ([]Session, error)
	// UpdateSessionStatus sets the status of a live session.
	UpdateSessionStatus(ctx context.Context, id, status string) error
	// StopSession marks a live session "stopping" and records why it ends.
	StopSession(ctx context.Context, id, reason string) error
	// EndSession records that a live session ended: its final status,
	// when, and why (an empty reason keeps the one StopSession recorded).
	// Its public ports go with it; its workspace is free again.
	EndSession(ctx context.Context, id, status, reason string, at time.Time) error
	// PruneSessions forgets sessions that ended before t and returns how
	// many.
	PruneSessions(ctx context.Context, endedBefore time.Time) (int, error)
	// DeleteSession forgets a session, live or ended, without a trace.
	DeleteSession(ctx context.Context, id string) error
	// SetSessionE2B records the E2B front end's data of a live session.
	SetSessionE2B(ctx context.Context, id, data string) error
	// SetSessionExpiry moves the expiry of a live session.
	SetSessionExpiry(ctx context.Context, id string, at time.Time) error

	CreateWorkspace(ctx context.Context, w Workspace) error
	// GetWorkspace finds an account's workspace by name.
	GetWorkspace(ctx context.Context, accountID, name string) (Workspace, error)
	GetWorkspaceByID(ctx context.Context, id string) (Workspace, error)
	// ListWorkspaces returns an account's workspaces (all when accountID
	// is empty), oldest first.
	ListWorkspaces(ctx context.Context, accountID string) ([]Workspace, error)
	// ListWorkspacesPage returns at most limit of what ListWorkspaces
	// returns, those after the cursor (CreatedAt, ID) of the previous
	// page's last workspace: a keyset page.
	ListWorkspacesPage(ctx context.Context, accountID string, after paging.Cursor, limit int) ([]Workspace, error)
	// SetWorkspaceDisk records the new size of a workspace's disk (its
	// Resources.DiskMB), and of the live session on it.
	SetWorkspaceDisk(ctx context.Context, id string, diskMB int64) error
	// DeleteWorkspace deletes a workspace and any default pointing at it.
	DeleteWorkspace(ctx context.Context, id string) error
	// SetDefault makes a workspace the account's default for its session
	// type.
	SetDefault(ctx context.Context, accountID, sessionType, workspaceID string) error
	// GetDefault returns the id of the account's default workspace for a
	// session type, or ErrNotFound.
	GetDefault(ctx context.Context, accountID, sessionType string) (string, error)

	// SetPortPublic records whether a port of a session is public. The
	// record goes with its session.
	SetPortPublic(ctx context.Context, sessionID string, port int, public bool) error
	// PublicPorts returns the public ports of every live session.
	PublicPorts(ctx context.Context) (map[string][]int, error)

	Close() error
}
