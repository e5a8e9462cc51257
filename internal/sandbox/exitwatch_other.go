//go:build !linux

package sandbox

import (
	"context"
	"errors"
)

// waitExit is Linux-only (pidfd): elsewhere the health checks alone find
// dead sandboxes.
func waitExit(ctx context.Context, pid int) error { return errors.ErrUnsupported }
