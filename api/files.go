package api

import "time"

// File types of FileInfo.Type.
const (
	FileTypeFile    = "file"
	FileTypeDir     = "dir"
	FileTypeSymlink = "symlink"
	FileTypeOther   = "other" // device, FIFO, socket
)

// FileInfo describes one file in a sandbox. Paths are the sandbox's own
// absolute paths; Mode is the octal permission string ("0644").
type FileInfo struct {
	Path    string    `json:"path"`
	Name    string    `json:"name"`
	Type    string    `json:"type"`
	Size    int64     `json:"size"`
	Mode    string    `json:"mode"`
	ModTime time.Time `json:"mtime"`
	// LinkTarget is what a symlink points to (as written in the link).
	LinkTarget string `json:"link_target,omitempty"`
	// SHA256 is the hex digest of the content, set in upload answers only.
	SHA256 string `json:"sha256,omitempty"`
}

// FileList is the answer of GET /v1/sessions/{id}/files: the entries of a
// directory (with recursive=true, of its whole tree, depth first in name
// order). Truncated is set when the listing stopped at MaxEntries.
type FileList struct {
	Path       string     `json:"path"`
	Entries    []FileInfo `json:"entries"`
	Truncated  bool       `json:"truncated"`
	MaxEntries int        `json:"max_entries"`
}

// MkdirRequest is the body of POST /v1/sessions/{id}/files/mkdir. Missing
// parents are created (like mkdir -p); Mode applies to the last directory.
type MkdirRequest struct {
	Path string `json:"path"`
	Mode string `json:"mode,omitempty"`
	// User owns the directories made (the image's user by default): a
	// name or uid, optionally :group or :gid.
	User string `json:"user,omitempty"`
}

// MoveRequest is the body of POST /v1/sessions/{id}/files/move. Without
// Overwrite an existing destination is an already_exists error.
type MoveRequest struct {
	From      string `json:"from"`
	To        string `json:"to"`
	Overwrite bool   `json:"overwrite,omitempty"`
}
