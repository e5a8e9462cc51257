//go:build !linux

package network

import (
	"context"
	"log/slog"
	"net/netip"

	"github.com/chaserhq/chaser/internal/errdefs"
)

// Config configures a Manager.
type Config struct {
	DataDir, Subnet, ResolvConf string
	Log                         *slog.Logger
}

// Manager is Linux-only.
type Manager struct{}

// New returns ErrNotImplemented: sandbox networking needs Linux.
func New(Config) (*Manager, error) {
	return nil, errdefs.New(errdefs.ErrNotImplemented, "sandbox egress needs Linux")
}

func (m *Manager) Subnet() netip.Prefix { return netip.Prefix{} }
func (m *Manager) Key() string          { return "" }
func (m *Manager) Setup(context.Context, string, Policy) (Attachment, error) {
	return Attachment{}, errdefs.ErrNotImplemented
}
func (m *Manager) Release(string) error            { return nil }
func (m *Manager) Recover(map[string]Policy) error { return nil }
func (m *Manager) Close() error                    { return nil }
