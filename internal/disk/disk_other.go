//go:build !linux

package disk

import (
	"context"
	"fmt"

	"github.com/chaserhq/chaser/internal/errdefs"
)

var errLinux = fmt.Errorf("disk images need Linux loop devices: %w", errdefs.ErrNotImplemented)

// Create needs Linux.
func Create(context.Context, string, int64, Options) error { return errLinux }

// Mount needs Linux.
func Mount(string, string) error { return errLinux }

// MountNew is Mount of an image Create has just made.
func MountNew(string, string) error { return errLinux }

// Unmount needs Linux.
func Unmount(string) error { return errLinux }

// Grow needs Linux.
func Grow(context.Context, string, int64) error { return errLinux }

// Devices needs Linux.
func Devices(string) ([]string, error) { return nil, errLinux }

// Loops needs Linux.
func Loops() (map[string]string, error) { return nil, errLinux }

// Mounts needs Linux.
func Mounts(string) ([]string, error) { return nil, errLinux }

// UsageOf needs Linux.
func UsageOf(string) (Usage, error) { return Usage{}, errLinux }

// CanGrowOnline is false outside Linux.
func CanGrowOnline() bool { return false }

// ForgetTemplate is a no-op off Linux.
func ForgetTemplate(int64, Options) error { return nil }

// PruneTemplates is a no-op off Linux.
func PruneTemplates(Options) {}
