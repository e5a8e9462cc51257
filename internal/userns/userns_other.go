//go:build !linux

package userns

import (
	"fmt"

	"github.com/chaserhq/chaser/internal/errdefs"
)

// Own is Linux only.
func (m Remap) Own(dir string) error {
	if !m.Enabled() {
		return nil
	}
	return fmt.Errorf("user namespaces: %w", errdefs.ErrNotImplemented)
}

// ShiftTree is Linux only.
func (m Remap) ShiftTree(root string) error {
	return fmt.Errorf("user namespaces: %w", errdefs.ErrNotImplemented)
}

// IDMap is Linux only.
func (m Remap) IDMap(src, dst string) error {
	return fmt.Errorf("idmapped mounts: %w", errdefs.ErrNotImplemented)
}

// Unmount is Linux only.
func Unmount(dst string) error { return nil }

// Enterable is Linux only.
func Enterable(dir string, m Remap) bool { return false }

// OpenDir is Linux only.
func OpenDir(dir string, m Remap) error {
	return fmt.Errorf("user namespaces: %w", errdefs.ErrNotImplemented)
}
