package image

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/chaserhq/chaser/internal/errdefs"
	"github.com/chaserhq/chaser/internal/netguard"
)

// WithAllowedRegistries lets pulls reach these registries (HOST:PORT, or
// HOST for its default ports) whatever their address. Every other dial of
// a pull — the registry, its token realm, where it redirects — is refused
// when it would reach a loopback, private, link-local or the host's own
// address (see internal/netguard). Registries listed with
// WithInsecureRegistries are allowed too.
func WithAllowedRegistries(hosts []string) Option {
	return func(s *Store) { s.guard.allowed = append(s.guard.allowed, hosts...) }
}

// guard is what a store's pulls may reach besides public addresses.
type guard struct {
	allowed []string
}

// guardDialer returns the dialer of every registry connection: allowed
// and insecure registries whatever their address, anything else only on
// public addresses (netguard). NewStore calls it once options are applied.
func (s *Store) guardDialer() func(ctx context.Context, network, addr string) (net.Conn, error) {
	allow := append([]string(nil), s.guard.allowed...)
	for h := range s.insecure {
		allow = append(allow, h)
	}
	base := net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	d, err := netguard.New(base, allow)
	if err != nil {
		// The daemon validates the lists before it makes the store; a bad
		// entry here allows nothing rather than everything.
		s.log.Error("registry allowlist", "err", err)
		d, _ = netguard.New(base, nil)
	}
	return d.DialContext
}

// guardError returns the error a pull answers when the guard refused one
// of its dials, nil for other errors. It is the same for an open and a
// closed port, so pulls cannot be used to scan the host's network.
func guardError(ref name.Reference, err error) error {
	var refused *netguard.RefusedError
	if !errors.As(err, &refused) {
		return nil
	}
	reg := ref.Context().RegistryStr()
	return errdefs.New(errdefs.ErrPermissionDenied, fmt.Sprintf(
		"pulling %s would connect to %s, a loopback, private, link-local or this server's own address; the server reaches those only for registries its operator lists (chaser serve --allow-registry %s)",
		ref, refused.Addr, reg))
}
