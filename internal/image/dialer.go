package image

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

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

// guard is a store's registry transport and what it lets through.
type guard struct {
	allowed []string
	once    sync.Once
	rt      http.RoundTripper
}

// transport is the HTTP transport of every registry call: the guarded
// dialer under go-containerregistry's transport settings, with a bound on
// the wait for response headers (a registry that accepts connections but
// never answers must not hold a create for the whole pull timeout). It is
// built once per store.
func (s *Store) transport() http.RoundTripper {
	s.guard.once.Do(func() {
		allow := append([]string(nil), s.guard.allowed...)
		for h := range s.insecure {
			allow = append(allow, h)
		}
		d, err := netguard.New(net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}, allow)
		if err != nil {
			// The daemon validates the lists before it makes the store;
			// a bad entry here allows nothing rather than everything.
			s.log.Error("registry allowlist", "err", err)
			d, _ = netguard.New(net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}, nil)
		}
		t := remote.DefaultTransport.(*http.Transport).Clone()
		t.DialContext = d.DialContext
		t.ResponseHeaderTimeout = 30 * time.Second
		s.guard.rt = t
	})
	return s.guard.rt
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
