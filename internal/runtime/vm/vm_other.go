//go:build !linux

package vm

import (
	"context"
	"fmt"
	"net"

	"github.com/chaserhq/chaser/internal/errdefs"
	"github.com/chaserhq/chaser/internal/runtime"
)

// Runtime is not available off Linux.
type Runtime struct{}

// New fails: microVMs need a Linux host.
func New(Config) (*Runtime, error) {
	return nil, fmt.Errorf("runtime microvm needs a Linux host: %w", errdefs.ErrNotImplemented)
}

func (*Runtime) Name() string                               { return "microvm" }
func (*Runtime) Accel() string                              { return "" }
func (*Runtime) Create(context.Context, runtime.Spec) error { return errdefs.ErrNotImplemented }
func (*Runtime) Delete(context.Context, string) error       { return errdefs.ErrNotImplemented }
func (*Runtime) List(context.Context) ([]runtime.Instance, error) {
	return nil, errdefs.ErrNotImplemented
}
func (*Runtime) Close() error { return nil }
func (*Runtime) State(context.Context, string) (runtime.Instance, error) {
	return runtime.Instance{}, errdefs.ErrNotImplemented
}
func (*Runtime) Dial(context.Context, string) (net.Conn, error) {
	return nil, errdefs.ErrNotImplemented
}
func (*Runtime) Stats(context.Context, string) (runtime.Stats, error) {
	return runtime.Stats{}, errdefs.ErrNotImplemented
}
func (*Runtime) PruneDisks(context.Context) (int, error) { return 0, nil }
