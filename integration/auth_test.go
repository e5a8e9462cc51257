package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// authCLI runs chaser with only the environment given (plus PATH, HOME and
// CHASER_DATA_DIR of its own):
// no CHASER_API_KEY unless env sets it.
func authCLI(t *testing.T, env []string, stdin string, args ...string) Result {
	t.Helper()
	cmd := exec.Command(binary, args...)
	// The local server's data dir (where the CLI looks for admin.key) is
	// the test's own unless env names one.
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "CHASER_DATA_DIR=" + t.TempDir()}, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr, cmd.Stdin = &out, &errb, strings.NewReader(stdin)
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return Result{Stdout: out.String(), Stderr: errb.String(), Code: code}
}

// TestAuthProfiles checks chaser auth login/status/list/use/logout and the
// precedence of the environment over profiles.
func TestAuthProfiles(t *testing.T) {
	s := sharedServer(t)
	alice := s.account(t, "paid")
	bob := s.account(t, "free")
	conf := filepath.Join(t.TempDir(), "chaser", "config.json")
	base := []string{"CHASER_CONFIG=" + conf}

	// A bad key is refused and nothing is saved.
	r := authCLI(t, base, "chaser_nope_nope\n", "auth", "login", "--url", s.URL)
	if r.Code == 0 || !strings.Contains(r.Stderr, "invalid API key") {
		t.Fatalf("login with a bad key: %d %q", r.Code, r.Stderr)
	}
	if _, err := os.Stat(conf); !os.IsNotExist(err) {
		t.Fatalf("a refused login wrote the configuration: %v", err)
	}

	// The key comes on stdin, never as a flag.
	r = authCLI(t, base, alice+"\n", "auth", "login", "--url", s.URL, "--json")
	if r.Code != 0 {
		t.Fatalf("login: %d %s", r.Code, r.Stderr)
	}
	fi, err := os.Stat(conf)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("config file: %v %v", fi, err)
	}
	r = authCLI(t, base, "", "auth", "status", "--json")
	var st struct {
		Profile, URL string
		KeyFrom      string `json:"key_from"`
		Account      struct{ Tier string }
	}
	decodeJSON(t, []byte(r.Stdout), &st)
	if st.Profile != "default" || st.URL != s.URL || st.KeyFrom != "profile" || st.Account.Tier != "paid" {
		t.Fatalf("status: %s %s", r.Stdout, r.Stderr)
	}
	// Commands use the profile without any environment.
	if r = authCLI(t, base, "", "sessions", "list", "--json"); r.Code != 0 {
		t.Fatalf("sessions list with a profile: %s", r.Stderr)
	}

	// A second profile; switch between them.
	if r = authCLI(t, base, bob+"\n", "auth", "login", "--url", s.URL, "--profile", "bob"); r.Code != 0 {
		t.Fatalf("login bob: %s", r.Stderr)
	}
	r = authCLI(t, base, "", "auth", "status", "--json")
	decodeJSON(t, []byte(r.Stdout), &st)
	if st.Profile != "bob" || st.Account.Tier != "free" {
		t.Fatalf("after login bob: %s", r.Stdout)
	}
	r = authCLI(t, base, "", "auth", "status", "--json", "--profile", "default")
	decodeJSON(t, []byte(r.Stdout), &st)
	if st.Profile != "default" || st.Account.Tier != "paid" {
		t.Fatalf("--profile default: %s", r.Stdout)
	}
	if r = authCLI(t, base, "", "auth", "use", "default"); r.Code != 0 {
		t.Fatalf("use: %s", r.Stderr)
	}
	r = authCLI(t, base, "", "auth", "list", "--json")
	var list struct {
		Profiles []struct {
			Name    string
			Current bool
		}
	}
	if err := json.Unmarshal([]byte(r.Stdout), &list); err != nil || len(list.Profiles) != 2 || list.Profiles[0].Name != "bob" || !list.Profiles[1].Current {
		t.Fatalf("list: %s %v", r.Stdout, err)
	}
	if strings.Contains(r.Stdout, alice) {
		t.Fatal("auth list prints a key")
	}

	// The environment wins over the profile.
	r = authCLI(t, append(base, "CHASER_API_KEY=chaser_bad_bad"), "", "sessions", "list")
	if r.Code == 0 || !strings.Contains(r.Stderr, "invalid API key") {
		t.Fatalf("env key over profile: %d %q", r.Code, r.Stderr)
	}
	r = authCLI(t, base, "", "sessions", "list", "--profile", "nobody")
	if r.Code == 0 || !strings.Contains(r.Stderr, `no profile "nobody"`) {
		t.Fatalf("unknown profile: %d %q", r.Code, r.Stderr)
	}

	// Logout forgets the key.
	if r = authCLI(t, base, "", "auth", "logout"); r.Code != 0 {
		t.Fatalf("logout: %s", r.Stderr)
	}
	b, _ := os.ReadFile(conf)
	if strings.Contains(string(b), alice) {
		t.Fatal("the key is still in the configuration after logout")
	}
}

// TestForeignServer points the CLI at a web server that is not Chaser: the
// error says the status and that the URL looks wrong, and never prints the
// foreign page.
func TestForeignServer(t *testing.T) {
	const page = "<!DOCTYPE html><html><head><title>Welcome to nginx!</title></head><body>hello</body></html>"
	for _, status := range []int{http.StatusNotFound, http.StatusOK, http.StatusUnauthorized} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/html; charset=utf-8")
				w.WriteHeader(status)
				io.WriteString(w, page)
			}))
			defer ts.Close()
			env := []string{"CHASER_API_URL=" + ts.URL, "CHASER_API_KEY=chaser_x", "CHASER_CONFIG=" + filepath.Join(t.TempDir(), "c.json")}
			for _, args := range [][]string{{"sessions", "list"}, {"sandbox", "--ephemeral", "--json"}} {
				r := authCLI(t, env, "", args...)
				want := fmt.Sprintf("%d %s", status, http.StatusText(status))
				if r.Code == 0 || strings.Contains(r.Stderr, "<html") || strings.Contains(r.Stdout, "<html") ||
					!strings.Contains(r.Stderr, want) || !strings.Contains(r.Stderr, "does not look like a Chaser server") {
					t.Fatalf("chaser %v against a foreign %d: code %d\nstdout %q\nstderr %q", args, status, r.Code, r.Stdout, r.Stderr)
				}
			}
		})
	}
}

// TestLocalAdminKeyOnlyForItsServer checks the CLI's fallback to the local
// server's admin.key: used for the server that wrote it (at the address it
// records beside the key), never sent to another server; errors say which
// key was tried and from where.
func TestLocalAdminKeyOnlyForItsServer(t *testing.T) {
	local := newServer(t) // plays the server of this machine (DATA/admin.key)
	other := sharedServer(t)
	_, port, _ := strings.Cut(local.Addr, ":")
	conf := "CHASER_CONFIG=" + filepath.Join(t.TempDir(), "config.json")
	localEnv := func(url string) []string {
		return []string{conf, "CHASER_DATA_DIR=" + local.DataDir, "CHASER_API_URL=" + url}
	}

	for _, url := range []string{local.URL, "http://localhost:" + port} {
		r := authCLI(t, localEnv(url), "", "auth", "status", "--json")
		var st struct {
			KeyFrom string `json:"key_from"`
			Account struct{ Name string }
		}
		if r.Code != 0 {
			t.Fatalf("status against the local server at %s: %s", url, r.Stderr)
		}
		decodeJSON(t, []byte(r.Stdout), &st)
		if st.KeyFrom != "key-file" || st.Account.Name != "admin" {
			t.Fatalf("status against the local server at %s: %s", url, r.Stdout)
		}
	}

	// Another server, or no URL (the default address, where nothing of
	// this test listens): the local key is not sent.
	for _, env := range [][]string{localEnv(other.URL), {conf, "CHASER_DATA_DIR=" + local.DataDir}} {
		r := authCLI(t, env, "", "mcp")
		if r.Code == 0 || !strings.Contains(r.Stderr, "CHASER_API_KEY") || !strings.Contains(r.Stderr, "no API key") {
			t.Fatalf("mcp %v: %d %q", env, r.Code, r.Stderr)
		}
	}
	r := authCLI(t, localEnv(other.URL), "", "sessions", "list")
	keyFile := filepath.Join(local.DataDir, "admin.key")
	if r.Code == 0 || !strings.Contains(r.Stderr, "no key was sent") || !strings.Contains(r.Stderr, keyFile) ||
		!strings.Contains(r.Stderr, local.Addr) {
		t.Fatalf("sessions list against another server: %d %q", r.Code, r.Stderr)
	}
	// A wrong key says where it came from.
	r = authCLI(t, append(localEnv(local.URL), "CHASER_API_KEY=chaser_bad_bad"), "", "sessions", "list")
	if r.Code == 0 || !strings.Contains(r.Stderr, "the key sent was CHASER_API_KEY") {
		t.Fatalf("sessions list with a bad key: %d %q", r.Code, r.Stderr)
	}
}
