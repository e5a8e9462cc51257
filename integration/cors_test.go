package integration

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// corsHeaders returns the Access-Control-* headers of resp.
func corsHeaders(resp *http.Response) map[string]string {
	out := map[string]string{}
	for k, v := range resp.Header {
		if strings.HasPrefix(k, "Access-Control-") {
			out[k] = strings.Join(v, ", ")
		}
	}
	return out
}

// TestCORS drives a server started with --cors-origin the way a browser
// does: preflight, then the real request with a Bearer key. Other origins,
// servers without the flag and forwarded URLs get no CORS header at all.
func TestCORS(t *testing.T) {
	const page = "http://app.example:3000"
	s := newServer(t, "--cors-origin", page, "--cors-origin", "https://other.example", "--domain", "localhost")
	key := s.account(t, "free")

	t.Run("preflight of a listed origin", func(t *testing.T) {
		resp, body := fwd(t, s, "OPTIONS", "", "/v1/sessions", "", nil,
			"Origin", page, "Access-Control-Request-Method", "POST",
			"Access-Control-Request-Headers", "authorization, content-type")
		wantStatus(t, resp, body, http.StatusNoContent)
		h := resp.Header
		if h.Get("Access-Control-Allow-Origin") != page || !strings.Contains(h.Get("Access-Control-Allow-Methods"), "POST") ||
			!strings.Contains(strings.ToLower(h.Get("Access-Control-Allow-Headers")), "authorization") ||
			h.Get("Access-Control-Allow-Credentials") != "" || h.Get("Access-Control-Max-Age") == "" {
			t.Fatalf("preflight headers: %v", corsHeaders(resp))
		}
	})
	t.Run("request of a listed origin", func(t *testing.T) {
		resp, body := fwd(t, s, "POST", "", "/v1/sessions", key, strings.NewReader(`{"type":"sandbox","ephemeral":true}`),
			"Origin", page, "Content-Type", "application/json")
		wantStatus(t, resp, body, http.StatusCreated)
		var sess struct{ ID string }
		decodeJSON(t, []byte(body), &sess)
		t.Cleanup(func() { s.Client(key).DeleteSession(t.Context(), sess.ID) })
		exposed := resp.Header.Get("Access-Control-Expose-Headers")
		if resp.Header.Get("Access-Control-Allow-Origin") != page || !strings.Contains(exposed, "X-Request-Id") ||
			!strings.Contains(exposed, "X-Output-Start") || !strings.Contains(resp.Header.Get("Vary"), "Origin") {
			t.Fatalf("answer headers: %v (Vary %q)", corsHeaders(resp), resp.Header.Get("Vary"))
		}
		// An error answer is readable by the page too.
		resp, body = fwd(t, s, "GET", "", "/v1/sessions", "", nil, "Origin", page)
		wantStatus(t, resp, body, http.StatusUnauthorized)
		if resp.Header.Get("Access-Control-Allow-Origin") != page {
			t.Fatalf("401 headers: %v", corsHeaders(resp))
		}

		// Forwarded URLs: the app decides, Chaser adds nothing.
		startInSandbox(t, s, key, sess.ID, "fwdapp.py", appPort)
		for _, tc := range []struct{ name, host, path string }{
			{"path style", "", "/s/" + sess.ID + "/forward/8000/hello"},
			{"host style", sess.ID + ".localhost", "/forward/8000/hello"},
		} {
			resp, body := fwd(t, s, "GET", tc.host, tc.path, key, nil, "Origin", page)
			wantStatus(t, resp, body, http.StatusOK)
			if h := corsHeaders(resp); len(h) != 0 {
				t.Errorf("%s forward answer has CORS headers: %v", tc.name, h)
			}
			// The preflight reaches the app (which has no OPTIONS: 501).
			resp, body = fwd(t, s, "OPTIONS", tc.host, tc.path, "", nil,
				"Origin", page, "Access-Control-Request-Method", "GET")
			if h := corsHeaders(resp); len(h) != 0 || resp.StatusCode == http.StatusNoContent {
				t.Errorf("%s forward preflight: %d %v %s", tc.name, resp.StatusCode, h, body)
			}
		}
	})
	t.Run("unlisted origin gets nothing", func(t *testing.T) {
		resp, body := fwd(t, s, "OPTIONS", "", "/v1/sessions", "", nil,
			"Origin", "http://evil.example", "Access-Control-Request-Method", "POST",
			"Access-Control-Request-Headers", "authorization")
		if h := corsHeaders(resp); len(h) != 0 || resp.StatusCode == http.StatusNoContent {
			t.Fatalf("unlisted preflight: %d %v %s", resp.StatusCode, h, body)
		}
		resp, body = fwd(t, s, "GET", "", "/v1/sessions", key, nil, "Origin", "http://evil.example")
		wantStatus(t, resp, body, http.StatusOK)
		if h := corsHeaders(resp); len(h) != 0 {
			t.Fatalf("unlisted request: %v", h)
		}
	})
	t.Run("nothing open by default", func(t *testing.T) {
		d := sharedServer(t)
		resp, body := fwd(t, d, "OPTIONS", "", "/v1/sessions", "", nil,
			"Origin", page, "Access-Control-Request-Method", "POST")
		if h := corsHeaders(resp); len(h) != 0 || resp.StatusCode == http.StatusNoContent {
			t.Fatalf("default server preflight: %d %v %s", resp.StatusCode, h, body)
		}
		resp, body = fwd(t, d, "GET", "", "/healthz", "", nil, "Origin", page)
		if h := corsHeaders(resp); len(h) != 0 {
			t.Fatalf("default server answer: %v %s", h, body)
		}
	})
	t.Run("bad origin stops the server", func(t *testing.T) {
		for _, env := range [][]string{{}, {"CHASER_CORS_ORIGINS=http://ok.example,app.example/path"}} {
			args := []string{"serve", "--addr", "127.0.0.1:0", "--data-dir", filepath.Join(t.TempDir(), "d")}
			if len(env) == 0 {
				args = append(args, "--cors-origin", "app.example/path")
			}
			cmd := exec.CommandContext(t.Context(), binary, args...)
			cmd.Env = append(os.Environ(), env...)
			out, err := cmd.CombinedOutput()
			if err == nil || !strings.Contains(string(out), "cors-origin") {
				t.Fatalf("serve with a bad origin %v: %v %s", env, err, out)
			}
		}
	})
}
