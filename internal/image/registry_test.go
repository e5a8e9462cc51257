package image

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/chaserhq/chaser/internal/errdefs"
)

type okTransport struct{ calls int }

func (t *okTransport) RoundTrip(*http.Request) (*http.Response, error) {
	t.calls++
	return &http.Response{StatusCode: 200, Body: http.NoBody}, nil
}

func TestPlainHTTPGuard(t *testing.T) {
	for _, tc := range []struct {
		url     string
		allowed bool
	}{
		{"https://10.1.2.3:5000/v2/", true},
		{"http://10.1.2.3:5000/v2/", false},         // private address, not listed
		{"http://registry.example:5000/v2/", true},  // listed
		{"http://registry.example:5001/v2/", false}, // other port
		{"http://127.0.0.1:5000/v2/", true},         // loopback
		{"http://localhost:5000/v2/", true},         // loopback
		{"http://[::1]:5000/v2/", true},             // loopback
		{"http://192.168.1.1/token?scope=x", false}, // a token realm over HTTP
		{"https://registry.example:5001/v2/", true}, // TLS is always fine
	} {
		base := &okTransport{}
		g := &plainHTTPGuard{base: base, insecure: map[string]bool{"registry.example:5000": true}}
		req, _ := http.NewRequest("GET", tc.url, nil)
		_, err := g.RoundTrip(req)
		if (err == nil) != tc.allowed || (base.calls == 1) != tc.allowed {
			t.Errorf("%s: err %v, calls %d; want allowed=%v", tc.url, err, base.calls, tc.allowed)
		}
	}
}

func TestParseRef(t *testing.T) {
	s := &Store{insecure: map[string]bool{"registry.example:5000": true}}
	for _, tc := range []struct {
		ref, name, scheme string
		bad               bool
	}{
		{ref: "busybox", name: "index.docker.io/library/busybox:latest", scheme: "https"},
		{ref: "ghcr.io/example/dev:latest", name: "ghcr.io/example/dev:latest", scheme: "https"},
		{ref: "registry.example:5000/app:v1", name: "registry.example:5000/app:v1", scheme: "http"},
		{ref: "registry.example:5001/app:v1", name: "registry.example:5001/app:v1", scheme: "https"},
		{ref: "Upper/Case", bad: true},
		{ref: "app:v1:v2", bad: true},
		{ref: "app@sha256:short", bad: true},
	} {
		r, err := s.parseRef(tc.ref)
		if tc.bad {
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("%q: err %v, want ErrInvalidArgument", tc.ref, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.ref, err)
			continue
		}
		if r.Name() != tc.name || r.Context().Registry.Scheme() != tc.scheme {
			t.Errorf("%q: name %s scheme %s, want %s %s", tc.ref, r.Name(), r.Context().Registry.Scheme(), tc.name, tc.scheme)
		}
	}
}

func TestHostIsNotPulled(t *testing.T) {
	s, err := NewStore(t.TempDir(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Pull(context.Background(), HostRef, PullOptions{}); !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "built-in") {
		t.Errorf("pull host: %v", err)
	}
	if img, err := s.Resolve(context.Background(), HostRef); err != nil || img.Ref != HostRef {
		t.Errorf("resolve host: %v", err)
	}
	if len(s.List()) != 0 {
		t.Errorf("empty store lists %v", s.List())
	}
}

// TestConnectionHints: --insecure-registry is suggested only where listing
// the registry would make the pull work.
func TestConnectionHints(t *testing.T) {
	refused := func(u string) error {
		return &url.Error{Op: "Get", URL: u, Err: &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}}
	}
	for _, tc := range []struct {
		name, ref string
		listed    bool
		err       error
		hint      bool
	}{
		{"refused on 443, no port: HTTP on 80 may work", "registry.example/app:v1", false, refused("https://registry.example/v2/"), true},
		{"refused on its port", "registry.example:5000/app:v1", false, refused("https://registry.example:5000/v2/"), false},
		{"refused, listed", "registry.example/app:v1", true, refused("https://registry.example/v2/"), false},
		{"refused, loopback", "localhost/app:v1", false, refused("https://localhost/v2/"), false},
		{"plain HTTP answer", "10.0.0.5:5000/app:v1", false,
			&url.Error{Op: "Get", URL: "https://10.0.0.5:5000/v2/", Err: errors.New("http: server gave HTTP response to HTTPS client")}, true},
		{"untrusted certificate", "registry.example:5000/app:v1", false,
			&url.Error{Op: "Get", URL: "https://registry.example:5000/v2/", Err: &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}}, true},
		{"untrusted certificate, listed", "registry.example:5000/app:v1", true,
			&url.Error{Op: "Get", URL: "https://registry.example:5000/v2/", Err: &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}}, false},
		{"unresolvable", "registry.example/app:v1", false,
			&url.Error{Op: "Get", URL: "https://registry.example/v2/", Err: &net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: "registry.example"}}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &Store{insecure: map[string]bool{}}
			r, err := name.ParseReference(tc.ref)
			if err != nil {
				t.Fatal(err)
			}
			if tc.listed {
				s.insecure[r.Context().RegistryStr()] = true
			}
			got := s.registryError(r, tc.err)
			if !errors.Is(got, errdefs.ErrUnavailable) {
				t.Errorf("class of %v: want unavailable", got)
			}
			if hint := strings.Contains(got.Error(), "--insecure-registry"); hint != tc.hint {
				t.Errorf("hint %v, want %v: %v", hint, tc.hint, got)
			}
		})
	}
}

// TestKeychainFiles: podman's auth.json and Docker's config are both read,
// Docker Hub credentials are found under podman's "docker.io" key, and a
// malformed file is an unavailable error naming it by its setting only.
func TestKeychainFiles(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("XDG_RUNTIME_DIR", filepath.Join(dir, "run"))
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "config"))
	t.Setenv("DOCKER_CONFIG", filepath.Join(dir, "docker"))
	t.Setenv("REGISTRY_AUTH_FILE", "")
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	write := func(p, s string) {
		os.MkdirAll(filepath.Dir(p), 0o700)
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(dir, "run", "containers", "auth.json"), `{"auths":{"docker.io":{"auth":"`+b64("hub:pw")+`"}}}`)
	write(filepath.Join(dir, "docker", "config.json"), `{"auths":{"registry.example:5000":{"auth":"`+b64("doc:pw")+`"}}}`)
	k := &fileKeychain{}
	for ref, want := range map[string]string{
		"busybox":                         "hub",
		"registry.example:5000/app":       "doc",
		"other.example/app":               "",
		"index.docker.io/library/busybox": "hub",
	} {
		repo, err := name.NewRepository(ref)
		if err != nil {
			t.Fatal(err)
		}
		a, err := k.Resolve(repo)
		if err != nil {
			t.Fatalf("%s: %v", ref, err)
		}
		cfg, err := a.Authorization()
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Username != want {
			t.Errorf("%s: user %q, want %q", ref, cfg.Username, want)
		}
	}
	write(filepath.Join(dir, "run", "containers", "auth.json"), `{"auths":`)
	_, err := k.Resolve(name.MustParseReference("busybox").Context())
	if !errors.Is(err, errdefs.ErrUnavailable) || !strings.Contains(err.Error(), "$XDG_RUNTIME_DIR/containers/auth.json") || strings.Contains(err.Error(), dir) {
		t.Errorf("malformed auth.json: %v", err)
	}
}
