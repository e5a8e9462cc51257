package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// webDir is the console's npm project; its dev dependencies hold
// puppeteer-core for the end-to-end driver (web/e2e/console.mjs).
const webDir = "../web"

// screenshotDir is where TestConsoleBrowser leaves a screenshot of every
// page it visits, for people to look at (gitignored).
const screenshotDir = "testdata/screenshots"

// freeAddr returns a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// consoleRun is what a driver in web/e2e printed (lib.mjs's run).
type consoleRun struct {
	Steps   []map[string]any `json:"steps"`
	Log     []string         `json:"log"`
	CSP     []string         `json:"csp"`
	Measure map[string]any   `json:"measure"`
	Error   string           `json:"error"`
	Screen  string           `json:"screen"`

	t     *testing.T
	steps map[string]map[string]any
}

// runDriver runs node web/e2e/SCRIPT with args in headless Chromium and
// returns what it saw; a driver that stopped, or a CSP violation on the
// console's pages, fails the test (the rest of the checks still run).
//
// Arguments that start with "--", after the driver's own, are Chromium's
// (lib.mjs's run passes them on).
func runDriver(t *testing.T, timeout time.Duration, script string, args ...string) *consoleRun {
	t.Helper()
	const install = "run `. scripts/deps.sh && install_deps` (apt-get install -y chromium; cd web && npm ci)"
	if _, err := os.Stat("/usr/bin/chromium"); err != nil {
		t.Fatalf("headless Chromium is not installed (/usr/bin/chromium): %s", install)
	}
	if _, err := os.Stat(webDir + "/node_modules/puppeteer-core/package.json"); err != nil {
		t.Fatalf("puppeteer-core is missing in %s: %s", webDir, install)
	}
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", append([]string{"e2e/" + script}, args...)...)
	cmd.Dir = webDir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node e2e/%s: %v\n%s", script, err, stderr.String())
	}
	res := &consoleRun{t: t, steps: map[string]map[string]any{}}
	if err := json.Unmarshal(out, res); err != nil {
		t.Fatalf("driver output %q: %v", out, err)
	}
	for _, st := range res.Steps {
		res.steps[st["name"].(string)] = st
		b, _ := json.Marshal(st)
		t.Logf("step %s", b)
	}
	m, _ := json.Marshal(res.Measure)
	t.Logf("measured: %s", m)
	if res.Error != "" {
		t.Errorf("the browser run stopped: %s\nscreen:\n%s\nbrowser log:\n%s", res.Error, res.Screen, strings.Join(res.Log, "\n"))
	}
	if len(res.CSP) > 0 {
		t.Errorf("Content-Security-Policy violations: %q", res.CSP)
	}
	if st, ok := res.steps["native dialog"]; ok {
		t.Errorf("the console opened a native dialog (the keyboard and the tests cannot reach those well): %v", st)
	}
	return res
}

// step returns what the driver recorded for a step (the last one of that
// name), failing the test when it did not happen.
func (r *consoleRun) step(name string) map[string]any {
	r.t.Helper()
	st, ok := r.steps[name]
	if !ok {
		r.t.Errorf("step %q did not happen", name)
		return map[string]any{}
	}
	return st
}

// shotDir is a fresh directory under testdata/screenshots for one test's
// screenshots.
func shotDir(t *testing.T, name string) string {
	t.Helper()
	d, err := filepath.Abs(filepath.Join(screenshotDir, name))
	if err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(d)
	t.Logf("screenshots in %s", d)
	return d
}

// TestConsoleBrowser drives the web console of a real server
// (--console-addr) in headless Chromium: a wrong key is refused with a
// message; sign in; create a sandbox; the terminal answers `echo $((6*7))`
// with 42, follows a resize and survives a dropped connection; a file is
// uploaded, listed, downloaded unchanged, and one over the limit is
// refused before it is sent; a forwarded port opens in a new tab through a
// ticket, where the app's scripts cannot read the console's key; the
// sandbox is deleted; signing out forgets the key. No CSP violation on the
// way.
func TestConsoleBrowser(t *testing.T) {
	addr := freeAddr(t)
	// A limit below the default: the page must learn it from the server.
	const maxFile = 1 << 20
	s := newServer(t, "--console-addr", addr, "--max-file-size", "1MiB")
	key := s.account(t, "paid")
	res := runDriver(t, 4*time.Minute, "console.mjs", "http://"+addr+"/", key, s.AdminKey, t.TempDir(), shotDir(t, "browser"), fmt.Sprint(maxFile))
	steps := res.steps
	want := func(name, field string, v any) {
		t.Helper()
		st, ok := steps[name]
		if !ok {
			t.Errorf("step %q did not happen", name)
			return
		}
		if field != "" && fmt.Sprint(st[field]) != fmt.Sprint(v) {
			t.Errorf("step %q: %s = %v, want %v", name, field, st[field], v)
		}
	}
	want("wrong key", "", nil)
	want("signed in", "stored", true)
	want("terminal 42", "", nil)
	want("resized", "", nil)
	want("reconnected", "", nil)
	want("exited", "state", "exited with code 7")
	want("too big", "", nil)
	if st := steps["too big"]; !strings.Contains(fmt.Sprint(st["message"]), "at most 1.0 MB") || !strings.Contains(fmt.Sprint(st["label"]), "1.0 MB") {
		t.Errorf("the files page does not explain the server's 1 MiB limit: %v", st)
	}
	want("uploaded", "", nil)
	want("downloaded", "same", true)
	want("console keeps key", "stored", true)
	want("deleted", "", nil)
	want("signed out", "stored", nil)
	want("workspace created", "", nil)
	want("workspace default", "", nil)
	want("workspace deleted", "", nil)
	if _, err := s.Client(key).GetWorkspace(t.Context(), "e2e-ws"); err == nil {
		t.Error("workspace e2e-ws still exists after the console deleted it")
	}
	want("account created", "", nil)
	want("account deleted", "", nil)
	if k, _ := steps["account created"]["key"].(string); k == "" {
		t.Error("the admin page did not show the new account's key")
	} else if _, err := s.Client(k).Account(t.Context()); err == nil {
		t.Error("the key of the account the console deleted still works")
	}
	if rows := fmt.Sprint(steps["ports listed"]["rows"]); !strings.Contains(rows, "8000listening") {
		t.Errorf("the ports page does not show 8000 listening: %s", rows)
	}
	if fp, ok := steps["forwarded page"]; !ok {
		t.Error("the forwarded page was not reached")
	} else {
		if fp["origin"] == "http://"+addr {
			t.Errorf("the forwarded app runs on the console's origin %v", fp["origin"])
		}
		if strings.Contains(fmt.Sprint(fp["url"]), "ticket=") || strings.Contains(fmt.Sprint(fp["url"]), key) {
			t.Errorf("the forwarded page's URL still holds a credential: %v", fp["url"])
		}
		if fp["key"] != nil || fp["storage"] != float64(0) || fp["opener"] != false {
			t.Errorf("the forwarded app sees the console's storage or window: %v", fp)
		}
		if f := fmt.Sprint(fp["fetch"]); f != "401" && !strings.HasPrefix(f, "blocked") {
			t.Errorf("the forwarded app's fetch of the console's API: %v, want 401 or blocked", f)
		}
		if f := fmt.Sprint(fp["frame"]); strings.HasPrefix(f, "read") {
			t.Errorf("the forwarded app framed the console and read its storage: %v", f)
		}
	}
	if id, _ := steps["created"]["id"].(string); id != "" {
		if _, err := s.Client(key).GetSession(t.Context(), id); err == nil {
			sess, _ := s.Client(key).GetSession(t.Context(), id)
			if sess.Status == "running" {
				t.Errorf("session %s still runs after the console deleted it", id)
			}
		}
	}
}
