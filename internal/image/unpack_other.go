//go:build !linux

package image

import (
	"fmt"
	"io"

	"github.com/chaserhq/chaser/internal/errdefs"
	"github.com/chaserhq/chaser/internal/userns"
)

// Unpack needs Linux (overlayfs whiteouts, trusted xattrs).
func Unpack(r io.Reader, dir string) (UnpackStats, error) {
	return UnpackStats{}, fmt.Errorf("unpacking image layers needs Linux: %w", errdefs.ErrNotImplemented)
}

// UnpackShifted needs Linux.
func UnpackShifted(r io.Reader, dir string, m userns.Remap) (UnpackStats, error) {
	return Unpack(r, dir)
}

func syncDir(dir string) error { return nil }

// opaqueXattr is overlayfs's opaque-directory marker (Linux only).
const opaqueXattr = "trusted.overlay.opaque"
