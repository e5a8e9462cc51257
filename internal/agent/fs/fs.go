// Package fs is the agent's file service: upload, download, listing, stat,
// mkdir, remove and move of files inside the sandbox.
//
// The agent runs as PID 1 inside the sandbox's mount namespace, so every
// path here is the sandbox's own path: a symlink, a ".." or a bind mount in
// the sandbox resolves to something inside the sandbox, never to a host
// path — the server never touches sandbox paths on the host. On top of that,
// paths are resolved with openat2(RESOLVE_NO_MAGICLINKS): the /proc "magic
// links" (/proc/1/root, /proc/1/fd/N, /proc/self/exe, …) are refused, so a
// symlink planted in the sandbox cannot make the agent open something
// through its own file descriptors. Operations on the last path component
// go through a descriptor of the parent directory (the *at system calls),
// so swapping a parent for a symlink midway cannot redirect them.
//
// Writes never go through an existing file: an upload is written to a new
// temporary file in the target directory and renamed over the target when
// complete, so a refused, oversized or interrupted upload leaves the old
// file intact and no partial file behind, and a symlink or device at the
// target is replaced rather than written into.
//
// The package imports the standard library, api, errdefs and
// golang.org/x/sys/unix (the system calls the standard library lacks) only:
// it runs in every sandbox.
package fs

import (
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/chaserhq/chaser/internal/errdefs"
)

// DefaultMaxFileSize is the limit of one transfer unless the operator sets
// another (chaser serve --max-file-size).
const DefaultMaxFileSize int64 = 16 << 20

// MaxEntries bounds one listing: beyond it the listing is truncated.
const MaxEntries = 10000

// Reserved is the sandbox directory holding the agent itself. Mutating
// operations refuse it; the agent binary is also a read-only bind mount, so
// the kernel refuses writes that reach it through a symlink (EBUSY/EROFS).
const Reserved = "/.chaser"

// maxPath is PATH_MAX.
const maxPath = 4096

// Clean checks that p is an absolute sandbox path without ".." components
// and returns it cleaned ("/workspace//a/" → "/workspace/a"). Errors are of
// class ErrInvalidArgument with a message that says what to send.
func Clean(p string) (string, error) {
	switch {
	case p == "":
		return "", errdefs.New(errdefs.ErrInvalidArgument, `"path" is required: an absolute path in the sandbox, such as /workspace/app.js`)
	case strings.IndexByte(p, 0) >= 0:
		return "", errdefs.New(errdefs.ErrInvalidArgument, "path must not contain NUL bytes")
	case len(p) > maxPath:
		return "", errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("path is longer than %d bytes", maxPath))
	case !strings.HasPrefix(p, "/"):
		return "", errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("path %q must be absolute (start with /), such as /workspace/%s", p, p))
	}
	for _, c := range strings.Split(p, "/") {
		if c == ".." {
			return "", errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("path %q must not contain .. components", p))
		}
	}
	return path.Clean(p), nil
}

// isReserved reports whether cleaned path p is the agent's own directory or
// inside it.
func isReserved(p string) bool {
	return p == Reserved || strings.HasPrefix(p, Reserved+"/")
}

func reservedError(p string) error {
	return errdefs.New(errdefs.ErrPermissionDenied, fmt.Sprintf("%s is reserved for the Chaser agent", p))
}

// ParseMode parses an octal permission string ("0644", "755"); empty gives
// ok == false.
func ParseMode(s string) (mode uint32, ok bool, err error) {
	if s == "" {
		return 0, false, nil
	}
	n, err := strconv.ParseUint(s, 8, 32)
	if err != nil || n > 0o7777 {
		return 0, false, errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("mode %q must be octal permission bits such as 0644 or 0755", s))
	}
	return uint32(n), true, nil
}

// FormatMode is the inverse of ParseMode.
func FormatMode(m uint32) string { return fmt.Sprintf("%04o", m&0o7777) }

// HumanSize formats n bytes with binary units ("16 MiB").
func HumanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	v := float64(n) / float64(div)
	s := strconv.FormatFloat(v, 'f', 1, 64)
	s = strings.TrimSuffix(s, ".0")
	return s + " " + string("KMGTPE"[exp]) + "iB"
}

// TooLarge is the error of a transfer over limit bytes.
func TooLarge(limit int64) error {
	return errdefs.New(errdefs.ErrTooLarge, fmt.Sprintf("file is larger than the %s limit per transfer (the operator sets it with chaser serve --max-file-size)", HumanSize(limit)))
}

// Owner is who new files and directories belong to. The agent works as
// root and hands what it creates to the user a request acts for (the
// image's user by default), so that user can edit it; an existing file
// that is replaced keeps its owner. The zero value is root.
type Owner struct{ UID, GID int }

// WriteOptions tune Write.
type WriteOptions struct {
	// Owner owns the file when it is new, and the parents Write creates.
	Owner Owner
	// Mode sets the permission bits; nil keeps those of the file replaced,
	// or 0644 for a new file.
	Mode *uint32
	// Max is the most bytes accepted (0: DefaultMaxFileSize).
	Max int64
	// Size is the expected size, or -1 when unknown. A body of another
	// length is refused.
	Size int64
}
