//go:build !linux

package image

import (
	"fmt"
	"io"

	"github.com/chaserhq/chaser/internal/errdefs"
)

// Unpack needs Linux (overlayfs whiteouts, trusted xattrs).
func Unpack(r io.Reader, dir string) (UnpackStats, error) {
	return UnpackStats{}, fmt.Errorf("unpacking image layers needs Linux: %w", errdefs.ErrNotImplemented)
}

func syncDir(dir string) error { return nil }

// opaqueXattr is overlayfs's opaque-directory marker (Linux only).
const opaqueXattr = "trusted.overlay.opaque"
