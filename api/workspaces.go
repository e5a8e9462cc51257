package api

import "time"

// Workspace is a persistent writable layer — /workspace, installed
// packages, dotfiles: everything a sandbox changes — that sessions run on,
// one at a time. Its image is fixed when it is created.
type Workspace struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	SessionType string    `json:"session_type"`
	Image       string    `json:"image"`
	CreatedAt   time.Time `json:"created_at"`
	// Default tells whether this is the account's default workspace for
	// its session type.
	Default bool `json:"default"`
	// SessionID is the session running on the workspace, if any.
	SessionID *string `json:"session_id"`
	// SizeBytes is the disk space the workspace's files take.
	SizeBytes int64 `json:"size_bytes"`
	// DiskMB is the size of the workspace's disk now, its quota (equal to
	// Resources.DiskMB); 0 for a workspace without a disk image (made
	// before disk quotas, or on a server with them off), which has none.
	DiskMB int64 `json:"disk_mb"`
	// AccountID is the owner, shown in an admin's ?all=true list.
	AccountID string `json:"account_id,omitempty"`
	// Resources are those the workspace was created with; every session
	// on it gets them, and the tier's defaults for what they leave out.
	// DiskMB is set for every workspace made since disk quotas: the disk
	// is made at creation (asked for, or the tier's default then) and its
	// growth shows here too.
	Resources *ResourceRequest `json:"resources,omitempty"`
}

// CreateWorkspaceRequest is the body of POST /v1/workspaces.
type CreateWorkspaceRequest struct {
	Name        string `json:"name"`
	SessionType string `json:"session_type,omitempty"`
	Image       string `json:"image,omitempty"`
	// Resources fixes the resources of every session on the workspace.
	Resources *ResourceRequest `json:"resources,omitempty"`
	// Network fixes the network of every session on the workspace;
	// without it they get the tier's mode.
	Network *Network `json:"network,omitempty"`
}

// WorkspaceList is the body of GET /v1/workspaces.
type WorkspaceList struct {
	Workspaces []Workspace `json:"workspaces"`
	// NextToken, when set, fetches the next page (?next_token=…); it is
	// absent on the last page.
	NextToken string `json:"next_token,omitempty"`
}

// DefaultWorkspace is the body of PUT and GET /v1/defaults/{session_type}.
type DefaultWorkspace struct {
	SessionType string `json:"session_type,omitempty"`
	Workspace   string `json:"workspace"`
}

// UpdateWorkspaceRequest is the body of PATCH /v1/workspaces/{name}.
type UpdateWorkspaceRequest struct {
	// DiskMB grows the workspace's disk to this many MiB; it never
	// shrinks.
	DiskMB *int64 `json:"disk_mb"`
}
