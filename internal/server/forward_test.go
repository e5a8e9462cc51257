package server

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestRewriteLocation(t *testing.T) {
	info := prefixInfo{prefix: "/s/s-x/forward/3000", port: 3000}
	for _, tc := range []struct{ in, want string }{
		{"/login", "/s/s-x/forward/3000/login"},
		{"/a%2Fb?q=1#f", "/s/s-x/forward/3000/a%2Fb?q=1#f"},
		{"http://localhost:3000/x?y=1", "/s/s-x/forward/3000/x?y=1"},
		{"http://127.0.0.1:3000", "/s/s-x/forward/3000/"},
		{"//localhost:3000/z", "/s/s-x/forward/3000/z"},
		{"http://localhost:4000/x", "http://localhost:4000/x"}, // another port: not this app
		{"https://example.com/cb", "https://example.com/cb"},
		{"relative/path", "relative/path"},
		{"/s/s-x/forward/3000/done", "/s/s-x/forward/3000/done"}, // the app knew its prefix
	} {
		if got := rewriteLocation(tc.in, info); got != tc.want {
			t.Errorf("rewriteLocation(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestRewriteCookie(t *testing.T) {
	p := "/forward/8000"
	for _, tc := range []struct{ in, want string }{
		{"a=1; Path=/; HttpOnly", "a=1; Path=/forward/8000/; HttpOnly"},
		{"a=1; path=/api", "a=1; Path=/forward/8000/api"},
		{"a=1", "a=1; Path=/forward/8000/"},
		{"a=1; Path=/forward/8000/x", "a=1; Path=/forward/8000/x"},
		{"a=1; Domain=example.com; Path=/", "a=1; Path=/forward/8000/"},
		{"a=1;domain=.example.com;Secure", "a=1;Secure; Path=/forward/8000/"},
		{"a=1; DOMAIN = x.example.com ; HttpOnly; Domain", "a=1; HttpOnly; Path=/forward/8000/"},
		{"domain=1; Path=/", "domain=1; Path=/forward/8000/"}, // a cookie named domain stays
	} {
		if got := rewriteCookie(tc.in, p); got != tc.want {
			t.Errorf("rewriteCookie(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestForwardGrant(t *testing.T) {
	f := &forwarder{secret: []byte("0123456789abcdef0123456789abcdef")}
	g := f.sign("s-a", time.Now().Add(time.Hour))
	if !f.verify(g, "s-a") {
		t.Fatal("a fresh grant does not verify")
	}
	if f.verify(g, "s-b") {
		t.Error("a grant opens another session")
	}
	if f.verify(f.sign("s-a", time.Now().Add(-time.Second)), "s-a") {
		t.Error("an expired grant verifies")
	}
	other := &forwarder{secret: []byte("another secret of the right size")}
	if other.verify(g, "s-a") {
		t.Error("a grant of another server verifies")
	}
	for _, bad := range []string{"", ".", g + "x", strings.Replace(g, ".", "", 1), "czE.AAAA"} {
		if f.verify(bad, "s-a") {
			t.Errorf("verify(%q) = true", bad)
		}
	}
}

func TestDropCookie(t *testing.T) {
	h := http.Header{"Cookie": {"a=1; chaser_forward=x; b=2", "chaser_forward=y"}}
	dropCookie(h, forwardCookie)
	if got := h.Get("Cookie"); got != "a=1; b=2" || len(h.Values("Cookie")) != 1 {
		t.Fatalf("Cookie = %q", h.Values("Cookie"))
	}
	h = http.Header{"Cookie": {"chaser_forward=x"}}
	dropCookie(h, forwardCookie)
	if _, ok := h["Cookie"]; ok {
		t.Fatalf("empty Cookie header left: %q", h["Cookie"])
	}
}
