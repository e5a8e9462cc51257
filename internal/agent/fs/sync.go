package fs

import (
	"fmt"
	"path"
	"strings"

	"github.com/chaserhq/chaser/internal/errdefs"
)

// Sync operations (manifest, hashes, archive extraction, prune) work on
// paths relative to a root directory, as `chaser dev` mirrors a local tree
// into it. Every relative path is resolved beneath the root's descriptor
// (openat2 RESOLVE_BENEATH), so neither "..", an absolute name nor a
// symlink in the sandbox pointing outside the root can make them touch
// anything else.

// CleanRel checks that rel is a relative slash path without ".." and
// returns it cleaned ("./a//b/" → "a/b"). Errors are ErrInvalidArgument.
func CleanRel(rel string) (string, error) {
	switch {
	case rel == "" || rel == "." || rel == "./":
		return "", errdefs.New(errdefs.ErrInvalidArgument, "empty relative path")
	case strings.IndexByte(rel, 0) >= 0:
		return "", errdefs.New(errdefs.ErrInvalidArgument, "path must not contain NUL bytes")
	case len(rel) > maxPath:
		return "", errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("path is longer than %d bytes", maxPath))
	case strings.HasPrefix(rel, "/"):
		return "", errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("%q is absolute; entries must be relative to the root", rel))
	}
	for _, c := range strings.Split(rel, "/") {
		if c == ".." {
			return "", errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("%q must not contain .. components", rel))
		}
	}
	c := path.Clean(rel)
	if c == "." {
		return "", errdefs.New(errdefs.ErrInvalidArgument, "empty relative path")
	}
	return c, nil
}
