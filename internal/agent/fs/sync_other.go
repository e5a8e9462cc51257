//go:build !linux

package fs

import (
	"context"
	"io"

	"github.com/chaserhq/chaser/api"
)

// Manifest is implemented on Linux only.
func Manifest(ctx context.Context, root string, hash bool, emit func(api.ManifestEntry) error) error {
	return errNotLinux
}

// HashFiles is implemented on Linux only.
func HashFiles(ctx context.Context, root string, paths []string) (map[string]string, error) {
	return nil, errNotLinux
}

// Extract is implemented on Linux only.
func Extract(ctx context.Context, root string, r io.Reader, max int64, owner Owner) (api.ArchiveResult, error) {
	return api.ArchiveResult{}, errNotLinux
}

// Prune is implemented on Linux only.
func Prune(root string, paths []string) (api.PruneResult, error) {
	return api.PruneResult{}, errNotLinux
}
