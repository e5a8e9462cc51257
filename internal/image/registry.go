package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	goruntime "runtime"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/chaserhq/chaser/internal/errdefs"
)

// parseRef parses an image reference. Registries listed as insecure get a
// reference that goes over plain HTTP.
func (s *Store) parseRef(ref string) (name.Reference, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf(
			"image reference %q is malformed (%v); write it as [REGISTRY/]REPOSITORY[:TAG|@DIGEST], e.g. ghcr.io/example/dev:latest", ref, err))
	}
	if s.insecure[r.Context().RegistryStr()] {
		r, err = name.ParseReference(ref, name.Insecure)
		if err != nil {
			return nil, errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("image reference %q: %v", ref, err))
		}
	}
	return r, nil
}

// Platform is the platform images are pulled for: linux on the host's
// architecture.
func Platform() v1.Platform { return v1.Platform{OS: "linux", Architecture: goruntime.GOARCH} }

// remoteOptions are the options of every registry call. Retries are few
// and short: a create waits on them, and an unreachable registry should be
// reported in seconds, not a minute.
func (s *Store) remoteOptions(ctx context.Context) []remote.Option {
	return []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(s.keychain),
		remote.WithPlatform(Platform()),
		remote.WithRetryBackoff(remote.Backoff{Duration: 250 * time.Millisecond, Factor: 2, Jitter: 0.1, Steps: 3}),
		remote.WithUserAgent("chaser"),
		remote.WithTransport(&plainHTTPGuard{base: s.transport(), insecure: s.insecure}),
	}
}

// plainHTTPGuard refuses plain-HTTP requests except to loopback addresses
// and registries listed with --insecure-registry. go-containerregistry on
// its own also falls back to HTTP for private (RFC 1918) addresses, which
// would let anyone on such a network serve unverified manifests; Docker
// does not do that either.
type plainHTTPGuard struct {
	base     http.RoundTripper
	insecure map[string]bool
}

func (g *plainHTTPGuard) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme == "http" && !g.insecure[req.URL.Host] && !isLoopback(req.URL.Hostname()) {
		return nil, fmt.Errorf("plain HTTP to %s refused: it is not listed with --insecure-registry", req.URL.Host)
	}
	return g.base.RoundTrip(req)
}

func isLoopback(host string) bool {
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// registryError turns an error of a registry call into an error of the
// right class that names the image and the registry.
func registryError(ref name.Reference, err error) error {
	if gerr := guardError(ref, err); gerr != nil {
		return gerr
	}
	reg := ref.Context().RegistryStr()
	var terr *transport.Error
	if errors.As(err, &terr) {
		for _, d := range terr.Errors {
			switch d.Code {
			case transport.ManifestUnknownErrorCode, transport.NameUnknownErrorCode, transport.BlobUnknownErrorCode:
				return errdefs.New(errdefs.ErrNotFound, fmt.Sprintf("image %s not found: registry %s has no such repository or tag", ref, reg))
			case transport.UnauthorizedErrorCode, transport.DeniedErrorCode:
				return errdefs.New(errdefs.ErrNotFound, fmt.Sprintf(
					"image %s not found or access denied by registry %s; if it is private, log in as the server's user (docker login %s) and retry", ref, reg, reg))
			case transport.TooManyRequestsErrorCode:
				return errdefs.New(errdefs.ErrUnavailable, fmt.Sprintf("registry %s is rate-limiting pulls of %s; retry later", reg, ref))
			}
		}
		switch {
		case terr.StatusCode == 404:
			return errdefs.New(errdefs.ErrNotFound, fmt.Sprintf("image %s not found in registry %s", ref, reg))
		case terr.StatusCode == 401 || terr.StatusCode == 403:
			return errdefs.New(errdefs.ErrNotFound, fmt.Sprintf(
				"image %s not found or access denied by registry %s; if it is private, log in as the server's user (docker login %s) and retry", ref, reg, reg))
		case terr.StatusCode >= 500 || terr.StatusCode == 429:
			return errdefs.New(errdefs.ErrUnavailable, fmt.Sprintf("registry %s failed to serve %s: %v", reg, ref, err))
		}
		return fmt.Errorf("registry %s, image %s: %v: %w", reg, ref, err, errdefs.ErrUnavailable)
	}
	if isVerifyError(err) {
		return fmt.Errorf("image %s from registry %s: %v: %w", ref, reg, err, errdefs.ErrUnprocessable)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return errdefs.New(errdefs.ErrUnavailable, fmt.Sprintf(
			"registry %s stopped answering in the middle of pulling %s (%v); nothing was kept, retry when it is back", reg, ref, err))
	}
	var nerr net.Error
	var uerr *url.Error
	var operr *net.OpError
	if errors.As(err, &nerr) || errors.As(err, &uerr) || errors.As(err, &operr) ||
		errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "connection refused") {
		return errdefs.New(errdefs.ErrUnavailable, fmt.Sprintf(
			"registry %s is unreachable while pulling %s: %v (check the address; for a plain-HTTP registry start the server with --insecure-registry %s)", reg, ref, err, reg))
	}
	return fmt.Errorf("pull %s from registry %s: %w", ref, reg, err)
}

// isVerifyError reports whether err is go-containerregistry's refusal of
// content whose digest or size does not match its descriptor (its error
// type is internal, so it is known by its text).
func isVerifyError(err error) bool {
	return err != nil && strings.Contains(err.Error(), "error verifying")
}

// CheckRef reports whether ref is "host" or a well-formed OCI reference,
// returning ErrInvalidArgument otherwise. It does not contact a registry.
func CheckRef(ref string) error {
	if ref == HostRef {
		return nil
	}
	_, err := (&Store{}).parseRef(ref)
	return err
}
