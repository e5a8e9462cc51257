// Package integration holds black-box tests: they build the chaser binary
// once, start real servers with real runc sandboxes, and drive them through
// the CLI and the HTTP API as a user would. They need root (CI runs as
// root); without it they skip with a message. Without runc they fail.
package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/client"
	"github.com/chaserhq/chaser/internal/daemon"
	"github.com/chaserhq/chaser/internal/testserver"
)

// binary is the chaser binary built for this test run.
var binary string

// testRuntime is the runtime of the test servers' sandboxes, from
// CHASER_TEST_RUNTIME: runc by default; CI runs a focused subset again
// with runsc (see scripts/test.sh). testRunsc is CHASER_RUNSC, the runsc binary
// servers use (else the one on PATH or in oci.RunscCache).
var testRuntime, testRunsc = "runc", ""

// runtimeArgs are the flags that make a test server use testRuntime; a
// test's own flags come after them and win.
func runtimeArgs() []string {
	args := []string{"--runtime", testRuntime}
	if testRunsc != "" {
		args = append(args, "--runsc", testRunsc)
	}
	return args
}

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		fmt.Println("integration: skipping: these tests need root (they run runc and mount overlays)")
		os.Exit(0)
	}
	if _, err := exec.LookPath("runc"); err != nil {
		fmt.Println("integration: runc is not installed: apt-get install -y runc")
		os.Exit(1)
	}
	if v := os.Getenv("CHASER_TEST_RUNTIME"); v != "" {
		testRuntime = v
	}
	testRunsc = os.Getenv("CHASER_RUNSC")
	var err error
	if binary, err = testserver.Binary(); err != nil {
		fmt.Println("integration:", err)
		os.Exit(1)
	}
	home, err := isolateEnv()
	if err != nil {
		fmt.Println("integration:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(home)
	if shared != nil {
		shared.stop()
		release(shared.DataDir)
		os.RemoveAll(shared.DataDir)
	}
	// A prebuilt binary (CHASER_TEST_BIN, e.g. one built with -race) is the
	// user's: only a binary this run built is removed.
	if os.Getenv("CHASER_TEST_BIN") == "" {
		os.RemoveAll(filepath.Dir(binary))
	}
	os.Exit(code)
}

// isolateEnv makes the tests independent of whatever runs on this machine
// — a quickstart server on /var/lib/chaser, the user's profiles, CHASER_*
// variables — since every command they start inherits this environment:
// HOME, the configuration and the CLI's local data dir become a temporary
// directory of their own (returned), and CHASER_* variables are dropped.
// Go keeps its caches where they were.
func isolateEnv() (string, error) {
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "CHASER_") && k != "CHASER_TEST_BIN" {
			os.Unsetenv(k)
		}
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	oldHome, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	config, err := os.UserConfigDir()
	if err != nil {
		return "", err
	}
	home, err := os.MkdirTemp("", "chaser-home-")
	if err != nil {
		return "", err
	}
	for k, v := range map[string]string{
		"GOCACHE": filepath.Join(cache, "go-build"), "GOPATH": filepath.Join(oldHome, "go"), "GOENV": filepath.Join(config, "go", "env"),
		"HOME": home, "XDG_CONFIG_HOME": filepath.Join(home, ".config"), "XDG_DATA_HOME": filepath.Join(home, ".local", "share"),
		"XDG_CACHE_HOME": filepath.Join(home, ".cache"), "CHASER_DATA_DIR": filepath.Join(home, "data"),
	} {
		if strings.HasPrefix(k, "GO") && os.Getenv(k) != "" {
			continue
		}
		os.Setenv(k, v)
	}
	return home, nil
}

// Server is a running `chaser serve` (see internal/testserver) with the
// helpers tests drive it with.
type Server struct {
	*testserver.Server
}

// lockedWriter serializes writes of several goroutines to one writer.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// startServer starts a server on dataDir (a new one when empty) and waits
// until it answers. The caller stops it (t.Cleanup does for newServer).
func startServer(t testing.TB, dataDir string, args ...string) *Server {
	t.Helper()
	ts, err := testserver.Start(dataDir, append(runtimeArgs(), args...)...)
	if err != nil {
		t.Fatal(err)
	}
	return &Server{ts}
}

// newServer starts a server of the test's own, stopped (SIGTERM) and
// removed at the end of the test.
func newServer(t *testing.T, args ...string) *Server {
	s := startServer(t, "", args...)
	s.stopAtEnd(t)
	return s
}

// stopAtEnd stops s (SIGTERM) at the end of t, frees what its sandboxes
// hold, removes its data dir, and logs its output if t failed.
func (s *Server) stopAtEnd(t *testing.T) {
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			t.Logf("server log:\n%s", s.Log())
		}
		release(s.DataDir)
		os.RemoveAll(s.DataDir)
	})
}

var (
	shared     *Server
	sharedOnce sync.Once
)

// sharedServer is one server for the tests that need nothing special. Each
// test makes its own account on it. When the test fails, the server's log
// since the call is logged with it (the log of a request's 500 has its
// cause).
func sharedServer(t *testing.T) *Server {
	sharedOnce.Do(func() { shared = startServer(t, "") })
	if shared == nil {
		t.Fatal("shared server did not start")
	}
	from := len(shared.Log())
	t.Cleanup(func() {
		if t.Failed() {
			time.Sleep(200 * time.Millisecond) // a request's log line follows its answer
			t.Logf("shared server log since the test began:\n%s", tail(shared.Log()[from:], 64<<10))
		}
	})
	return shared
}

// tail returns the last n bytes of s, from a line start.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[len(s)-n:]
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return "[…]\n" + s
}

// release frees what sandboxes of a stopped server's data dir still hold:
// a test that killed its server and failed before restarting it leaves them
// running. It does what an operator does: start a server on the data dir
// (recovery) and stop it (graceful shutdown destroys every sandbox).
func release(dataDir string) {
	// The read-only idmapped mounts of the host's /usr that a killed
	// --userns-remap server leaves (TestUsernsRemap): detached first, so
	// nothing removing the data dir walks into them.
	idmaps, _ := filepath.Glob(filepath.Join(dataDir, "images-userns-*", "idmap", "*"))
	for _, m := range idmaps {
		syscall.Unmount(m, syscall.MNT_DETACH)
	}
	runc, _ := os.ReadDir(filepath.Join(dataDir, "sandboxes"))
	runsc, _ := os.ReadDir(filepath.Join(dataDir, "sandboxes-runsc"))
	disks, _ := os.ReadDir(filepath.Join(dataDir, "disks"))
	if len(runc)+len(runsc)+len(disks) == 0 {
		return
	}
	if s, err := testserver.Start(dataDir, runtimeArgs()...); err == nil {
		s.Stop()
	}
}

// stop sends SIGTERM and waits for the server to exit.
func (s *Server) stop() error { return s.Stop() }

// kill sends SIGKILL, like a crash.
func (s *Server) kill() {
	s.Cmd.Process.Kill()
	s.Cmd.Wait()
}

// Client returns an API client with key.
func (s *Server) Client(key string) *client.Client { return client.New(s.URL, key) }

// account creates an account of tier on s and returns its key.
func (s *Server) account(t *testing.T, tier string) string {
	t.Helper()
	name := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	if len(name) > 40 {
		name = name[:40]
	}
	name = fmt.Sprintf("%s-%d", name, time.Now().UnixNano()%1e9)
	a, err := s.Client(s.AdminKey).CreateAccount(context.Background(), api.CreateAccountRequest{Name: name, Tier: tier})
	if err != nil {
		t.Fatal(err)
	}
	return a.APIKey
}

// Result is the outcome of a CLI run.
type Result struct {
	Stdout, Stderr string
	Code           int
}

// cli runs the chaser binary against s with key; stdin may be nil.
func (s *Server) cli(t *testing.T, key string, stdin io.Reader, args ...string) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	// A configuration file of the test's own keeps the user's profiles out.
	cmd.Env = append(os.Environ(), "CHASER_API_URL="+s.URL, "CHASER_API_KEY="+key,
		"CHASER_CONFIG="+filepath.Join(t.TempDir(), "config.json"))
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr, cmd.Stdin = &out, &errb, stdin
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("chaser %v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	return Result{Stdout: out.String(), Stderr: errb.String(), Code: code}
}

// do sends an API request with key (none when empty) and a raw body.
func (s *Server) do(t *testing.T, key, method, path string, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, s.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// decodeJSON unmarshals b into v or fails the test.
func decodeJSON(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decode %q: %v", b, err)
	}
}

// expectError checks an error answer: status and JSON error code.
func expectError(t *testing.T, status int, body []byte, wantStatus int, wantCode string) {
	t.Helper()
	var e api.ErrorBody
	if err := json.Unmarshal(body, &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
		t.Fatalf("status %d: body %q is not a JSON error", status, body)
	}
	if status != wantStatus || e.Error.Code != wantCode {
		t.Fatalf("got %d %s (%s), want %d %s", status, e.Error.Code, e.Error.Message, wantStatus, wantCode)
	}
}

// sandbox creates an ephemeral session with key and deletes it at the end.
func (s *Server) sandbox(t *testing.T, key string) string {
	t.Helper()
	c := s.Client(key)
	sess, err := c.CreateSession(t.Context(), api.CreateSessionRequest{Type: "sandbox", Ephemeral: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.DeleteSession(context.Background(), sess.ID) })
	return sess.ID
}

// stateDir returns the host state directory of sandbox id, under whichever
// runtime runs it.
func (s *Server) stateDir(id string) string {
	dir := filepath.Join(s.DataDir, "sandboxes-runsc", id)
	if _, err := os.Stat(dir); err == nil {
		return dir
	}
	return filepath.Join(s.DataDir, "sandboxes", id)
}

// loopDevices lists the loop devices whose backing file's path contains
// s (a data dir, a session or workspace id), with that file.
func loopDevices(t *testing.T, s string) []string {
	t.Helper()
	files, err := filepath.Glob("/sys/block/loop*/loop/backing_file")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err == nil && strings.Contains(string(b), s) {
			out = append(out, filepath.Base(filepath.Dir(filepath.Dir(f)))+" "+strings.TrimSpace(string(b)))
		}
	}
	return out
}

// hostMounts returns the lines of the host's mount table under dir.
func hostMounts(t *testing.T, dir string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.Contains(sc.Text(), dir) {
			out = append(out, sc.Text())
		}
	}
	return out
}

// leaks lists what remains on the host of sandbox id: mounts, loop
// devices, disk images, cgroups, runtime state, state directory,
// processes.
func (s *Server) leaks(t *testing.T, id string) []string {
	var left []string
	for _, m := range hostMounts(t, id) {
		left = append(left, "mount: "+m)
	}
	for _, l := range loopDevices(t, id) {
		left = append(left, "loop device: "+l)
	}
	for _, p := range []string{filepath.Join(s.DataDir, "disks", id), filepath.Join(s.DataDir, "disks", id+".img")} {
		if _, err := os.Stat(p); err == nil {
			left = append(left, "disk: "+p)
		}
	}
	for _, parent := range []string{daemon.CgroupParent(s.DataDir), daemon.CgroupParent(s.DataDir) + "-runsc"} {
		cgs, _ := filepath.Glob("/sys/fs/cgroup/*/" + parent + "/" + id)
		for _, c := range cgs {
			left = append(left, "cgroup: "+c)
		}
	}
	for _, p := range []string{filepath.Join(s.DataDir, "sandboxes", id), filepath.Join(s.DataDir, "runc", id),
		filepath.Join(s.DataDir, "sandboxes-runsc", id), filepath.Join(s.DataDir, "runsc", id),
		filepath.Join(s.DataDir, "sandboxes-microvm", id)} {
		if _, err := os.Stat(p); err == nil {
			left = append(left, "state: "+p)
		}
	}
	out, _ := exec.Command("pgrep", "-f", id).Output()
	if len(bytes.TrimSpace(out)) > 0 {
		left = append(left, "processes: "+strings.Fields(string(out))[0])
	}
	return left
}
