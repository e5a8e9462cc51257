//go:build !linux

package oci

import (
	"context"
	"fmt"
	"net"

	"github.com/chaserhq/chaser/internal/errdefs"
	"github.com/chaserhq/chaser/internal/runtime"
	"github.com/chaserhq/chaser/internal/userns"
)

// Runtime is not available outside Linux.
type Runtime struct{}

// New returns errdefs.ErrNotImplemented: OCI runtimes need Linux.
func New(cfg Config) (*Runtime, error) {
	return nil, fmt.Errorf("the %s runtime needs Linux: %w", cfg.Binary, errdefs.ErrNotImplemented)
}

func (r *Runtime) Name() string                               { return "oci" }
func (r *Runtime) Platform() string                           { return "" }
func (r *Runtime) Create(context.Context, runtime.Spec) error { return errdefs.ErrNotImplemented }
func (r *Runtime) Delete(context.Context, string) error       { return errdefs.ErrNotImplemented }
func (r *Runtime) List(context.Context) ([]runtime.Instance, error) {
	return nil, errdefs.ErrNotImplemented
}
func (r *Runtime) Dial(context.Context, string) (net.Conn, error) {
	return nil, errdefs.ErrNotImplemented
}
func (r *Runtime) State(context.Context, string) (runtime.Instance, error) {
	return runtime.Instance{}, errdefs.ErrNotImplemented
}
func (r *Runtime) Stats(context.Context, string) (runtime.Stats, error) {
	return runtime.Stats{}, errdefs.ErrNotImplemented
}
func (r *Runtime) Close() error { return errdefs.ErrNotImplemented }

// Remap is off outside Linux.
func (r *Runtime) Remap() userns.Remap { return userns.Remap{} }
