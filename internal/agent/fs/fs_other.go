//go:build !linux

package fs

import (
	"context"
	"io"
	"os"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/errdefs"
)

var errNotLinux = errdefs.New(errdefs.ErrNotImplemented, "the file service runs inside Linux sandboxes only")

// Write is implemented on Linux only.
func Write(ctx context.Context, p string, r io.Reader, o WriteOptions) (api.FileInfo, error) {
	return api.FileInfo{}, errNotLinux
}

// Open is implemented on Linux only.
func Open(p string, max int64) (*os.File, api.FileInfo, error) {
	return nil, api.FileInfo{}, errNotLinux
}

// Stat is implemented on Linux only.
func Stat(p string) (api.FileInfo, error) { return api.FileInfo{}, errNotLinux }

// List is implemented on Linux only.
func List(p string, recursive bool) (api.FileList, error) { return api.FileList{}, errNotLinux }

// Mkdir is implemented on Linux only.
func Mkdir(p, mode string, owner Owner) (api.FileInfo, bool, error) {
	return api.FileInfo{}, false, errNotLinux
}

// Remove is implemented on Linux only.
func Remove(p string, recursive bool) error { return errNotLinux }

// Move is implemented on Linux only.
func Move(req api.MoveRequest) (api.FileInfo, error) { return api.FileInfo{}, errNotLinux }
