package integration

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// xtermDir holds the browser test's npm project: @xterm/xterm,
// @xterm/addon-attach and puppeteer-core, installed by `npm ci`.
const xtermDir = "testdata/xterm"

// TestBrowserXtermAttach opens the PTY WebSocket from a real browser
// (headless Chromium) with the stock xterm.js attach addon, unmodified, as
// docs/terminal.md shows it: raw=true, then typing a command on the
// keyboard must show its output on the terminal's screen, with no JSON on
// it, and `exit 3` must close the socket normally with reason "exit 3".
func TestBrowserXtermAttach(t *testing.T) {
	const install = "run `. scripts/deps.sh && install_deps` (apt-get install -y chromium; cd integration/testdata/xterm && npm ci)"
	if _, err := os.Stat("/usr/bin/chromium"); err != nil {
		t.Fatalf("headless Chromium is not installed (/usr/bin/chromium): %s", install)
	}
	for _, m := range []string{"puppeteer-core", "@xterm/xterm", "@xterm/addon-attach"} {
		if _, err := os.Stat(xtermDir + "/node_modules/" + m + "/package.json"); err != nil {
			t.Fatalf("node module %s is missing in %s: %s", m, xtermDir, install)
		}
	}
	s := sharedServer(t)
	key := s.account(t, "free")
	id := s.sandbox(t, key)

	// The page comes from an origin of its own on loopback, as an app's
	// page would.
	page := httptest.NewServer(http.FileServer(http.Dir(xtermDir)))
	defer page.Close()
	ws := s.wsURL(id, url.Values{"raw": {"true"}, "token": {key}})
	pageURL := page.URL + "/index.html?ws=" + url.QueryEscape(ws)

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "drive.mjs", pageURL, t.TempDir())
	cmd.Dir = xtermDir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node drive.mjs: %v\n%s", err, stderr.String())
	}
	var res struct {
		Screen string `json:"screen"`
		Closed *struct {
			Code   int    `json:"code"`
			Reason string `json:"reason"`
		} `json:"closed"`
		Log []string `json:"log"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("driver output %q: %v", out, err)
	}
	t.Logf("screen:\n%s", res.Screen)
	if len(res.Log) > 0 {
		t.Logf("browser log: %q", res.Log)
	}
	if !strings.Contains(res.Screen, "42 in-the-browser") {
		t.Error("the typed command's output is not on the screen")
	}
	if strings.Contains(res.Screen, `"type"`) || strings.Contains(res.Screen, "pty_id") {
		t.Error("JSON from the server is on the screen")
	}
	if res.Closed == nil || res.Closed.Code != 1000 || res.Closed.Reason != "exit 3" {
		t.Errorf("socket closed with %+v, want 1000 \"exit 3\"", res.Closed)
	}
}
