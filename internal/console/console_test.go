package console

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHandler(t *testing.T) {
	var apiHost string
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		apiHost = r.Host
		w.Write([]byte("api " + r.URL.Path))
	})
	h := Handler(Config{API: api, APIAddr: "0.0.0.0:8080"})
	get := func(path string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		r := httptest.NewRequest("GET", "http://console.test:8081"+path, nil)
		h.ServeHTTP(w, r)
		return w
	}
	w := get("/")
	if w.Code != 200 || !strings.Contains(w.Body.String(), "<div id=\"app\">") {
		t.Fatalf("/: %d %q", w.Code, w.Body.String())
	}
	if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self';") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("CSP %q", csp)
	}
	if w := get("/v1/sessions"); w.Body.String() != "api /v1/sessions" || apiHost != "console.test:8080" {
		t.Errorf("/v1/ reached the API as %q with Host %q, want the API listener's port", w.Body.String(), apiHost)
	}
	for _, p := range []string{"/s/s-1/forward/8000/", "/forward/8000/", "/nothing"} {
		if w := get(p); w.Code != 404 || strings.HasPrefix(w.Body.String(), "api") {
			t.Errorf("%s on the console's origin: %d %q, want 404", p, w.Code, w.Body.String())
		}
	}
	if w := get("/console.json"); !strings.Contains(w.Body.String(), `"forward_origin":"http://console.test:8080"`) {
		t.Errorf("/console.json: %s", w.Body.String())
	}

	by := ByHost("example.com", api, h)
	for host, want := range map[string]string{"console.example.com": "console", "console.example.com:8080": "console", "s-1.example.com": "api", "example.com": "api"} {
		w := httptest.NewRecorder()
		r := httptest.NewRequest("GET", "http://"+host+"/", nil)
		by.ServeHTTP(w, r)
		got := "console"
		if strings.HasPrefix(w.Body.String(), "api") {
			got = "api"
		}
		if got != want {
			t.Errorf("host %s served by %s, want %s", host, got, want)
		}
	}
}

// TestForwardOrigin: where the console's forward links point, for a
// browser that reached it directly or through a (TLS) proxy on another
// port.
func TestForwardOrigin(t *testing.T) {
	for _, tc := range []struct {
		name, domain, host, proto, fwdHost, want string
	}{
		{"own listener", "", "console.test:8081", "", "", "http://console.test:8080"},
		{"own listener, TLS proxy says https", "", "console.test:8081", "https", "", "https://console.test:8080"},
		{"own listener, proxy rewrote Host", "", "127.0.0.1:8081", "https", "public.test:9443", "https://public.test:8080"},
		{"console.DOMAIN direct", "example.com", "console.example.com:8080", "", "", "http://example.com:8080"},
		{"console.DOMAIN behind a TLS proxy on 443", "example.com", "console.example.com", "https", "", "https://example.com"},
		{"console.DOMAIN behind a TLS proxy on 8443", "example.com", "console.example.com:8443", "https", "", "https://example.com:8443"},
		{"console.DOMAIN behind a proxy that rewrote Host", "example.com", "127.0.0.1:8080", "https", "console.example.com:9443", "https://example.com:9443"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := Handler(Config{API: http.NotFoundHandler(), APIAddr: "0.0.0.0:8080", Domain: tc.domain})
			r := httptest.NewRequest("GET", "http://"+tc.host+"/console.json", nil)
			if tc.proto != "" {
				r.Header.Set("X-Forwarded-Proto", tc.proto)
			}
			if tc.fwdHost != "" {
				r.Header.Set("X-Forwarded-Host", tc.fwdHost)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if want := `"forward_origin":"` + tc.want + `"`; !strings.Contains(w.Body.String(), want) {
				t.Errorf("/console.json = %s, want %s", w.Body.String(), want)
			}
		})
	}
}
