package image

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"

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
