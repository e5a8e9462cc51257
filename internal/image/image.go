// Package image resolves image references to root filesystems: stacks of
// read-only layers that the runtime mounts under a sandbox's own writable
// directory. The built-in image "host" is made from the host's /usr (and
// /bin, /lib*, /sbin where they are not symlinks into /usr) and a curated
// /etc, so it needs no download and works offline.
package image

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/chaserhq/chaser/internal/errdefs"
	"github.com/chaserhq/chaser/internal/runtime"
)

// HostRef is the reference of the built-in host image.
const HostRef = "host"

// Image is a resolved image.
type Image struct {
	Ref      string
	Overlays []runtime.Overlay
	// Env is the image's environment (PATH, HOME, ...).
	Env []string
	// WorkingDir is the default directory of commands; empty means
	// /workspace.
	WorkingDir string
}

// Store resolves references.
type Store struct {
	dir  string
	log  *slog.Logger
	host *Image
}

// NewStore returns a store keeping its files under dir. It builds the host
// image's skeleton (a few KB) if this version of it is not there yet.
func NewStore(dir string, log *slog.Logger) (*Store, error) {
	s := &Store{dir: dir, log: log.With("component", "image")}
	host, err := buildHost(dir)
	if err != nil {
		return nil, fmt.Errorf("host image: %w", err)
	}
	s.host = host
	return s, nil
}

// Resolve returns the image for ref. Only "host" exists for now; other
// references return errdefs.ErrNotImplemented.
func (s *Store) Resolve(ctx context.Context, ref string) (*Image, error) {
	if ref == "" || ref == HostRef {
		return s.host, nil
	}
	return nil, fmt.Errorf("image %q: OCI images are not supported yet, only %q: %w", ref, HostRef, errdefs.ErrNotImplemented)
}
