package image

import (
	"encoding/pem"
	"errors"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/chaserhq/chaser/internal/errdefs"
	"github.com/chaserhq/chaser/internal/netguard"
)

// TestRegistryTransportsAreGuarded: every transport a store makes for a
// registry — the default one, a per-host one with certs.d CAs, the one of
// an --insecure-registry that skips verification, plain HTTP — dials
// through the guard, so TLS settings never open a way around it.
func TestRegistryTransportsAreGuarded(t *testing.T) {
	var hits atomic.Int64
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) })
	certsSrv := httptest.NewTLSServer(ok) // trusted through certs.d
	defer certsSrv.Close()
	insecureSrv := httptest.NewTLSServer(ok) // listed with --insecure-registry
	defer insecureSrv.Close()
	plainSrv := httptest.NewServer(ok) // plain HTTP on loopback
	defer plainSrv.Close()
	untrustedSrv := httptest.NewUnstartedServer(ok)           // nothing configured: the default transport
	untrustedSrv.Config.ErrorLog = log.New(io.Discard, "", 0) // its handshakes fail, as they should
	untrustedSrv.StartTLS()
	defer untrustedSrv.Close()
	host := func(s *httptest.Server) string { return strings.SplitN(s.URL, "://", 2)[1] }

	certs := t.TempDir()
	if err := os.Mkdir(filepath.Join(certs, host(certsSrv)), 0o755); err != nil {
		t.Fatal(err)
	}
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certsSrv.Certificate().Raw})
	if err := os.WriteFile(filepath.Join(certs, host(certsSrv), "ca.crt"), ca, 0o644); err != nil {
		t.Fatal(err)
	}

	for _, allowed := range []bool{false, true} {
		opts := []Option{WithCertsDir(certs), WithInsecureRegistries([]string{host(insecureSrv)})}
		if allowed {
			opts = append(opts, WithAllowedRegistries([]string{host(certsSrv), host(plainSrv), host(untrustedSrv)}))
		}
		s, err := NewStore(t.TempDir(), slog.New(slog.DiscardHandler), opts...)
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name, url string
			listed    bool // reached without --allow-registry
		}{
			{"certs.d CA", certsSrv.URL + "/v2/", false},
			{"insecure registry", insecureSrv.URL + "/v2/", true},
			{"plain HTTP", plainSrv.URL + "/v2/", false},
			{"default transport", untrustedSrv.URL + "/v2/", false},
		} {
			hits.Store(0)
			req, _ := http.NewRequest("GET", tc.url, nil)
			resp, err := s.transport.RoundTrip(req)
			if resp != nil {
				resp.Body.Close()
			}
			var refused *netguard.RefusedError
			wantRefused := !tc.listed && !allowed
			if got := errors.As(err, &refused); got != wantRefused {
				t.Errorf("%s (allow-listed: %v): err %v; want refused by the guard: %v", tc.name, allowed, err, wantRefused)
			}
			if wantRefused && hits.Load() != 0 {
				t.Errorf("%s: the refused registry got %d requests", tc.name, hits.Load())
			}
			if tc.name != "default transport" && !wantRefused && (err != nil || resp.StatusCode != 200) {
				t.Errorf("%s (allow-listed: %v): %v %v; want 200", tc.name, allowed, resp, err)
			}
		}
	}
}

// TestGuardErrorFirst: a dial the guard refused is answered 403 naming
// --allow-registry, never as an unreachable registry with the
// --insecure-registry hint that a refused dial on 443 would otherwise get.
func TestGuardErrorFirst(t *testing.T) {
	s := &Store{insecure: map[string]bool{}}
	r, err := name.ParseReference("registry.example/app:v1") // a public name resolving to a private address
	if err != nil {
		t.Fatal(err)
	}
	dialErr := &url.Error{Op: "Get", URL: "https://registry.example/v2/", Err: &net.OpError{Op: "dial", Net: "tcp",
		Err: &netguard.RefusedError{Addr: "registry.example:443"}}}
	got := s.registryError(r, dialErr)
	if !errors.Is(got, errdefs.ErrPermissionDenied) {
		t.Errorf("class of %v: want permission denied", got)
	}
	if msg := got.Error(); !strings.Contains(msg, "--allow-registry registry.example") || strings.Contains(msg, "--insecure-registry") {
		t.Errorf("refusal: %s; want the --allow-registry hint only", msg)
	}
}
