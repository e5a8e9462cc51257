package api

// Sync: the endpoints `chaser dev` uses to mirror a local tree into a
// sandbox directory efficiently (see docs/dev.md). Paths in these bodies
// are relative to the root given as ?path= (slash-separated, no "..").

// ManifestEntry describes one entry of a tree, relative to its root.
type ManifestEntry struct {
	Path string `json:"path"`
	Type string `json:"type"` // FileTypeFile, FileTypeDir, FileTypeSymlink, FileTypeOther
	Size int64  `json:"size"`
	Mode string `json:"mode"` // octal permission bits, "0644"
	// SHA256 is the hex digest of a regular file (when hashes were asked).
	SHA256 string `json:"sha256,omitempty"`
	// LinkTarget is what a symlink points to, as written in the link.
	LinkTarget string `json:"link_target,omitempty"`
}

// Manifest is the answer of GET /v1/sessions/{id}/files/manifest: every
// entry beneath Root (not following symlinks), depth first in name order.
// MaxFileSize is the server's limit per file, so a client can skip larger
// files without sending them. Error is set when the walk stopped early
// (the answer is streamed, so it cannot change its status any more).
type Manifest struct {
	Root        string          `json:"root"`
	Exists      bool            `json:"exists"`
	MaxFileSize int64           `json:"max_file_size"`
	Entries     []ManifestEntry `json:"entries"`
	Error       string          `json:"error,omitempty"`
}

// HashesRequest is the body of POST /v1/sessions/{id}/files/hashes.
type HashesRequest struct {
	Paths []string `json:"paths"`
}

// Hashes maps relative paths of regular files to their hex SHA-256. Paths
// that are missing or not regular files are left out.
type Hashes struct {
	Hashes map[string]string `json:"hashes"`
}

// SyncEntry is one entry written by an archive extraction.
type SyncEntry struct {
	Path string `json:"path"`
	Type string `json:"type"`
	Size int64  `json:"size,omitempty"`
}

// SyncError is one entry an extraction or a prune could not apply; the
// others went on. Code is an error code such as "too_large".
type SyncError struct {
	Path    string `json:"path"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// ArchiveResult is the answer of POST /v1/sessions/{id}/files/archive.
type ArchiveResult struct {
	Root    string      `json:"root"`
	Written []SyncEntry `json:"written"`
	Errors  []SyncError `json:"errors"`
	// Bytes is the total size of the regular files written.
	Bytes int64 `json:"bytes"`
}

// PruneRequest is the body of POST /v1/sessions/{id}/files/prune.
type PruneRequest struct {
	Paths []string `json:"paths"`
}

// PruneResult is the answer of a prune: what was removed (with everything
// beneath it) and what could not be. Missing paths count as removed.
type PruneResult struct {
	Root    string      `json:"root"`
	Removed []string    `json:"removed"`
	Errors  []SyncError `json:"errors"`
}

// DevEvent is one line of `chaser dev --json`. Type "ready" comes once,
// after the initial sync (SessionID, Root, Files, Uploaded, Deleted,
// Bytes); then "sync" per change applied (Op "write", "mkdir", "symlink" or
// "delete", and Path); "error" for what could not be synced (Path when it
// concerns one entry; sync goes on); "reconcile" after a full reconcile
// that follows a failure or a change of ignore rules.
type DevEvent struct {
	Type      string `json:"type"`
	SessionID string `json:"session_id,omitempty"`
	Root      string `json:"root,omitempty"`
	Op        string `json:"op,omitempty"`
	Path      string `json:"path,omitempty"`
	Code      string `json:"code,omitempty"`
	Message   string `json:"message,omitempty"`
	Files     int    `json:"files,omitempty"`
	Uploaded  int    `json:"uploaded,omitempty"`
	Deleted   int    `json:"deleted,omitempty"`
	Bytes     int64  `json:"bytes,omitempty"`
}
