package image

import (
	"context"
	"crypto/tls"
	"crypto/x509"
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
		remote.WithTransport(s.transport),
	}
}

// newRegistryTransport returns the transport of every registry call:
// go-containerregistry's, dialling through dial (the store's guard, see
// dialer.go: every connection, whatever registry, token realm or redirect
// it is for, and whatever per-registry TLS settings apply), with a bound
// on the wait for response headers (a registry that accepts connections
// but never answers must not hold a create for the whole pull timeout),
// TLS settings per registry from certsDir (tlsTransport, whose per-host
// transports are clones of this one and so dial the same way), and plain
// HTTP only where allowed (plainHTTPGuard).
func newRegistryTransport(certsDir string, insecure map[string]bool, dial func(ctx context.Context, network, addr string) (net.Conn, error)) http.RoundTripper {
	t := remote.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = dial
	t.ResponseHeaderTimeout = 30 * time.Second
	return &plainHTTPGuard{base: newTLSTransport(t, certsDir, insecure), insecure: insecure}
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
func (s *Store) registryError(ref name.Reference, err error) error {
	// The guard's refusal first: it must read the same whatever else
	// failed on the way (an open or a closed port), and no hint below
	// applies to it.
	if gerr := guardError(ref, err); gerr != nil {
		return gerr
	}
	reg := ref.Context().RegistryStr()
	var cfe *configFileError
	if errors.As(err, &cfe) {
		return fmt.Errorf("pull %s: %w", ref, cfe)
	}
	// Connection failures first: when go-containerregistry tried HTTPS
	// and then plain HTTP (loopback, listed registries), the error holds
	// both attempts, and the HTTPS one says what went wrong.
	if cerr := s.connectionError(ref, err); cerr != nil {
		return cerr
	}
	var terr *transport.Error
	if errors.As(err, &terr) {
		for _, d := range terr.Errors {
			switch d.Code {
			case transport.ManifestUnknownErrorCode, transport.NameUnknownErrorCode, transport.BlobUnknownErrorCode:
				return errdefs.New(errdefs.ErrNotFound, fmt.Sprintf("image %s not found: registry %s has no such repository or tag", ref, reg))
			case transport.UnauthorizedErrorCode, transport.DeniedErrorCode:
				return errdefs.New(errdefs.ErrNotFound, fmt.Sprintf(
					"image %s not found or access denied by registry %s; if it is private, log in as the server's user (docker login %s, or podman login) and retry", ref, reg, reg))
			case transport.TooManyRequestsErrorCode:
				return errdefs.New(errdefs.ErrUnavailable, fmt.Sprintf("registry %s is rate-limiting pulls of %s; retry later", reg, ref))
			}
		}
		switch {
		case terr.StatusCode == 404:
			return errdefs.New(errdefs.ErrNotFound, fmt.Sprintf("image %s not found in registry %s", ref, reg))
		case terr.StatusCode == 401 || terr.StatusCode == 403:
			return errdefs.New(errdefs.ErrNotFound, fmt.Sprintf(
				"image %s not found or access denied by registry %s; if it is private, log in as the server's user (docker login %s, or podman login) and retry", ref, reg, reg))
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
	hasOp := errors.As(err, &operr)
	if hasOp || errors.As(err, &nerr) || errors.As(err, &uerr) ||
		errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "connection refused") {
		cause := err.Error()
		if hasOp {
			cause = operr.Error() // "dial tcp H:P: connect: connection refused", once
		}
		msg := fmt.Sprintf("registry %s is unreachable while pulling %s: %s; check that it is running and the reference's registry address", reg, ref, cause)
		// Listing a registry helps only where it makes the pull use
		// plain HTTP to another port: a reference without a port goes to
		// 443 for HTTPS and to 80 for HTTP. Loopback registries already
		// fall back to HTTP; a listed one is listed.
		if _, _, perr := net.SplitHostPort(reg); perr != nil && !s.insecure[reg] && !isLoopback(reg) {
			msg += fmt.Sprintf(" (if it serves plain HTTP on port 80, start the server with --insecure-registry %s)", reg)
		}
		return errdefs.New(errdefs.ErrUnavailable, msg)
	}
	return fmt.Errorf("pull %s from registry %s: %w", ref, reg, err)
}

// connectionError describes the failures to set up a connection to a
// registry whose fix differs: an untrusted TLS certificate, a registry
// that answers plain HTTP, a name that does not resolve. It returns nil
// for other errors. --insecure-registry is suggested only where it would
// help: the registry is not listed yet, and the failure is its TLS.
func (s *Store) connectionError(ref name.Reference, err error) error {
	reg := ref.Context().RegistryStr()
	var verr *tls.CertificateVerificationError
	var uaerr x509.UnknownAuthorityError
	var herr x509.HostnameError
	var cierr x509.CertificateInvalidError
	var cause error
	switch {
	case errors.As(err, &verr):
		cause = verr.Err
	case errors.As(err, &uaerr):
		cause = uaerr
	case errors.As(err, &herr):
		cause = herr
	case errors.As(err, &cierr):
		cause = cierr
	}
	if cause != nil {
		msg := fmt.Sprintf("registry %s presents a TLS certificate the server does not trust (%v) while pulling %s; "+
			"give the server the registry's CA certificate, as %s/ca.crt in its registry certificates directory "+
			"(CHASER_REGISTRY_CERTS_DIR, default %s) or in SSL_CERT_FILE", reg, cause, ref, reg, DefaultCertsDir)
		if !s.insecure[reg] {
			msg += fmt.Sprintf(", or start the server with --insecure-registry %s to skip verification", reg)
		}
		return errdefs.New(errdefs.ErrUnavailable, msg)
	}
	var rherr tls.RecordHeaderError
	if errors.As(err, &rherr) || strings.Contains(err.Error(), "server gave HTTP response to HTTPS client") {
		msg := fmt.Sprintf("registry %s answers plain HTTP, not HTTPS, while pulling %s", reg, ref)
		if !s.insecure[reg] {
			msg += fmt.Sprintf("; to allow plain HTTP to it, start the server with --insecure-registry %s", reg)
		}
		return errdefs.New(errdefs.ErrUnavailable, msg)
	}
	var dnserr *net.DNSError
	if errors.As(err, &dnserr) {
		// dnserr.Err only: the whole error names the server's resolver.
		return errdefs.New(errdefs.ErrUnavailable, fmt.Sprintf(
			"registry host %s cannot be resolved (%s) while pulling %s; check the registry name in the reference", dnserr.Name, dnserr.Err, ref))
	}
	return nil
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
