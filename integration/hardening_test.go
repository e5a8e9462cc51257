package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/agent"
	"github.com/chaserhq/chaser/internal/image/imagetest"
)

// httpFrom returns an HTTP client whose connections come from the
// loopback address src (127.0.0.0/8 is all loopback on Linux), one
// connection per request.
func httpFrom(src string, timeout time.Duration) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: timeout}
	return &http.Client{Timeout: timeout, Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
}

// TestSlowClientsAreCut: a client that dribbles its headers (slowloris) or
// a JSON body holds its connection only as long as the server's timeouts,
// and is then cut.
func TestSlowClientsAreCut(t *testing.T) {
	s := newServer(t, "--read-header-timeout", "2s", "--body-timeout", "2s")
	key := s.account(t, "free")

	// dribble writes head, then one more line every 300 ms, and returns
	// how long the server kept the connection and what it answered.
	dribble := func(t *testing.T, head, line string) (time.Duration, string) {
		t.Helper()
		c, err := net.Dial("tcp", s.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		start := time.Now()
		closed := make(chan string, 1)
		go func() {
			b, _ := io.ReadAll(c)
			closed <- string(b)
		}()
		if _, err := io.WriteString(c, head); err != nil {
			t.Fatal(err)
		}
		tick := time.NewTicker(300 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case got := <-closed:
				return time.Since(start), got
			case <-tick.C:
				if time.Since(start) > 15*time.Second {
					t.Fatalf("the server still reads after %s", time.Since(start))
				}
				io.WriteString(c, line) // fails once the server closed
			}
		}
	}

	t.Run("headers", func(t *testing.T) {
		took, _ := dribble(t, "GET /healthz HTTP/1.1\r\nHost: x\r\n", "X-Slow: 1\r\n")
		if took < time.Second || took > 6*time.Second {
			t.Fatalf("connection cut after %s, want about 2s (--read-header-timeout)", took)
		}
	})
	t.Run("body", func(t *testing.T) {
		head := "POST /v1/sessions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + key +
			"\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"
		took, got := dribble(t, head, " ")
		if took > 6*time.Second || !strings.HasPrefix(got, "HTTP/1.1 400") || !strings.Contains(got, "did not arrive within 2s") {
			t.Fatalf("after %s the server answered %q; want a 400 after about 2s (--body-timeout)", took, got)
		}
	})
}

// TestConnectionFloodFromOneAddress: a client keeping 2000 idle
// connections open (more than the server's open-files limit, lowered here
// to 1024 as on many hosts) must not take the server down: its
// connections over --max-conns-per-ip (default 512) are refused with 429,
// and /healthz and exec keep answering other clients.
func TestConnectionFloodFromOneAddress(t *testing.T) {
	const flood = 2000
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Max < flood+512 {
		t.Fatalf("the open-files hard limit %d is too small for this test; raise it (ulimit -Hn)", lim.Max)
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}

	s := newServer(t)
	key := s.account(t, "paid")
	c := s.Client(key)
	id := s.sandbox(t, key)
	if err := unix.Prlimit(s.Cmd.Process.Pid, unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: 1024, Max: 1024}, nil); err != nil {
		t.Fatal(err)
	}

	// The flood: each of its connections sends nothing and stays open
	// until the server closes it, then comes back (after 100 ms when it was
	// refused), so the client keeps up to 2000 connections at all times.
	ctx, stop := context.WithCancel(t.Context())
	var (
		wg               sync.WaitGroup
		dialled, refused atomic.Int64
		retryAfter       atomic.Value
	)
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
	for range flood {
		wg.Add(1)
		go func() {
			defer wg.Done()
			first := true
			for ctx.Err() == nil {
				conn, err := d.DialContext(ctx, "tcp", s.Addr)
				if err != nil {
					time.Sleep(100 * time.Millisecond)
					continue
				}
				if first {
					dialled.Add(1)
					first = false
				}
				stopped := context.AfterFunc(ctx, func() { conn.Close() })
				resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
				if err == nil && resp.StatusCode == http.StatusTooManyRequests {
					refused.Add(1)
					retryAfter.Store(resp.Header.Get("Retry-After"))
					resp.Body.Close()
				}
				stopped()
				conn.Close()
				time.Sleep(100 * time.Millisecond)
			}
		}()
	}
	defer func() {
		stop()
		wg.Wait()
	}()
	for dialled.Load() < flood {
		if ctx.Err() != nil {
			t.Fatal("flood cancelled")
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second)
	// Other clients: /healthz, a new connection each time, and an exec.
	other := httpFrom("127.0.0.1", 5*time.Second)
	var took []time.Duration
	for i := range 200 {
		start := time.Now()
		resp, err := other.Get(s.URL + "/healthz")
		if err != nil {
			t.Fatalf("GET /healthz %d under the flood: %v", i, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /healthz %d under the flood: %s", i, resp.Status)
		}
		took = append(took, time.Since(start))
	}
	slices.Sort(took)
	t.Logf("/healthz under a flood of %d connections (%d refusals so far): p50 %s, p99 %s, max %s",
		flood, refused.Load(), took[len(took)/2], took[len(took)*99/100], took[len(took)-1])

	ectx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	res, err := c.Exec(ectx, id, api.ExecRequest{Command: "echo still here"})
	if err != nil || strings.TrimSpace(res.Stdout) != "still here" {
		t.Fatalf("exec under the flood: %+v, %v", res, err)
	}

	if refused.Load() == 0 {
		t.Fatal("no connection of the flood was refused with 429")
	}
	if ra, _ := retryAfter.Load().(string); ra == "" {
		t.Fatal("the 429 has no Retry-After")
	}

	// An HTTP client on the flooding address is told why. The flood's
	// connections come and go (the header timeout cuts them, refused ones
	// come back after 100 ms), so a slot may be free for a moment: ask a
	// few times and expect the 429 while the address is over its cap.
	var last string
	for range 50 {
		resp, err := httpFrom("127.0.0.2", 5*time.Second).Get(s.URL + "/healthz")
		if err != nil {
			// Past 64 refusals in flight, a connection is closed
			// without an answer: ask again.
			last = err.Error()
			time.Sleep(20 * time.Millisecond)
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusTooManyRequests {
			if resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), "too many connections") {
				t.Fatalf("from the flooding address: %s %s", resp.Status, body)
			}
			last = ""
			break
		}
		last = resp.Status + " " + string(body)
		time.Sleep(20 * time.Millisecond)
	}
	if last != "" {
		t.Fatalf("from the flooding address, never refused; last answer: %s", last)
	}
}

// TestMetricsNeedAdminKey: on the main listener /metrics is for the admin
// only; --metrics-addr serves it without a key, and nothing else there.
func TestMetricsNeedAdminKey(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	metricsAddr := l.Addr().String()
	l.Close()
	s := newServer(t, "--metrics-addr", metricsAddr)
	user := s.account(t, "paid")

	code, body := s.do(t, "", "GET", "/metrics", "")
	expectError(t, code, body, http.StatusUnauthorized, "unauthenticated")
	code, body = s.do(t, user, "GET", "/metrics", "")
	expectError(t, code, body, http.StatusForbidden, "permission_denied")
	code, body = s.do(t, s.AdminKey, "GET", "/metrics", "")
	if code != http.StatusOK || !strings.Contains(string(body), "chaser_http_requests_total") {
		t.Fatalf("metrics with the admin key: %d %.200s", code, body)
	}

	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get("http://" + metricsAddr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/metrics"); code != http.StatusOK || !strings.Contains(body, "chaser_sandboxes_running") {
		t.Fatalf("--metrics-addr /metrics without a key: %d %.200s", code, body)
	}
	for _, p := range []string{"/healthz", "/v1/sessions", "/"} {
		if code, body := get(p); code != http.StatusNotFound {
			t.Fatalf("--metrics-addr serves %s: %d %.200s", p, code, body)
		}
	}
}

// TestAdminListsAll: the admin adds ?all=true to see every account's
// sessions and workspaces (and whose they are); other accounts get 403.
func TestAdminListsAll(t *testing.T) {
	s := sharedServer(t)
	user := s.account(t, "paid")
	c := s.Client(user)
	me, err := c.Account(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	id := s.sandbox(t, user)
	wsName := fmt.Sprintf("all-%d", time.Now().UnixNano()%1e9)
	if _, err := c.CreateWorkspace(t.Context(), api.CreateWorkspaceRequest{Name: wsName}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.DeleteWorkspace(context.Background(), wsName, true) })

	// findSession returns the session id in a list answer, if there.
	findSession := func(body []byte) (api.Session, bool) {
		var l api.SessionList
		decodeJSON(t, body, &l)
		for _, x := range l.Sessions {
			if x.ID == id {
				return x, true
			}
		}
		return api.Session{}, false
	}
	code, body := s.do(t, s.AdminKey, "GET", "/v1/sessions", "")
	if _, found := findSession(body); code != 200 || found {
		t.Fatalf("the admin's own list: %d, shows the user's session: %v", code, found)
	}
	code, body = s.do(t, s.AdminKey, "GET", "/v1/sessions?all=true", "")
	if x, found := findSession(body); code != 200 || !found || x.AccountID != me.ID {
		t.Fatalf("?all=true: %d, found %v, account %q (want %q)", code, found, x.AccountID, me.ID)
	}
	code, body = s.do(t, s.AdminKey, "GET", "/v1/workspaces?all=true", "")
	var wl api.WorkspaceList
	decodeJSON(t, body, &wl)
	if i := slices.IndexFunc(wl.Workspaces, func(w api.Workspace) bool { return w.Name == wsName }); code != 200 || i < 0 || wl.Workspaces[i].AccountID != me.ID {
		t.Fatalf("workspaces ?all=true: %d %s", code, body)
	}

	for _, p := range []string{"/v1/sessions?all=true", "/v1/workspaces?all=1"} {
		code, body := s.do(t, user, "GET", p, "")
		expectError(t, code, body, http.StatusForbidden, "permission_denied")
	}
	code, body = s.do(t, s.AdminKey, "GET", "/v1/sessions?all=maybe", "")
	expectError(t, code, body, http.StatusBadRequest, "invalid_argument")

	r := s.cli(t, s.AdminKey, nil, "sessions", "list", "--all", "--json")
	if r.Code != 0 {
		t.Fatalf("chaser sessions list --all: %d %s", r.Code, r.Stderr)
	}
	if x, found := findSession([]byte(r.Stdout)); !found || x.AccountID != me.ID {
		t.Fatalf("chaser sessions list --all does not show the user's session: %s", r.Stdout)
	}
	if r := s.cli(t, s.AdminKey, nil, "sessions", "list", "--all"); r.Code != 0 || !strings.Contains(r.Stdout, id) || !strings.Contains(r.Stdout, me.ID) {
		t.Fatalf("chaser sessions list --all (table): %d %s %s", r.Code, r.Stdout, r.Stderr)
	}
	if r := s.cli(t, user, nil, "sessions", "list", "--all"); r.Code == 0 || !strings.Contains(r.Stderr, "admin") {
		t.Fatalf("chaser sessions list --all as a user: %d %s %s", r.Code, r.Stdout, r.Stderr)
	}
	if r := s.cli(t, s.AdminKey, nil, "workspaces", "list", "--all"); r.Code != 0 || !strings.Contains(r.Stdout, wsName) {
		t.Fatalf("chaser workspaces list --all: %d %s %s", r.Code, r.Stdout, r.Stderr)
	}
}

// ptracePy attaches to the pid in argv[1] with ptrace(PTRACE_ATTACH) and
// prints "ok" or the errno's name. On success it waits for the stop and
// detaches, so a tracee is never left frozen.
const ptracePy = `
import ctypes, errno, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
pid = int(sys.argv[1])
if libc.ptrace(16, pid, None, None) != 0:
    print(errno.errorcode[ctypes.get_errno()])
    sys.exit(0)
os.waitpid(pid, 0x40000000)
libc.ptrace(17, pid, None, None)
print("ok")
`

// TestAgentUnreachable checks that nothing in a sandbox can reach its
// agent (PID 1) through ptrace or /proc/1, that a write storm from inside
// leaves the host's agent.log within its cap, and that users can still
// debug their own processes.
func TestAgentUnreachable(t *testing.T) {
	s := sharedServer(t)
	key := s.account(t, "free")
	id := s.sandbox(t, key)
	c := s.Client(key)
	exec := func(cmd string) api.ExecResult {
		t.Helper()
		res, err := c.Exec(t.Context(), id, api.ExecRequest{Command: cmd, TimeoutMS: 60000})
		if err != nil {
			t.Fatalf("exec %q: %v", cmd, err)
		}
		return res
	}
	if res := exec("cat > /tmp/ptrace.py <<'EOF'\n" + ptracePy + "EOF\n"); res.ExitCode != 0 {
		t.Fatalf("write script: %+v", res)
	}

	t.Run("ptrace attach to PID 1 is refused", func(t *testing.T) {
		if res := exec("python3 /tmp/ptrace.py 1"); res.Stdout != "EPERM\n" {
			t.Errorf("PTRACE_ATTACH 1 gave %q (stderr %q), want EPERM", res.Stdout, res.Stderr)
		}
	})
	t.Run("/proc/1 of the agent is closed", func(t *testing.T) {
		for _, cmd := range []string{
			"ls -l /proc/1/fd",
			"readlink /proc/1/fd/1",
			"echo x > /proc/1/fd/1",
			"echo x > /proc/1/fd/2",
			"cat /proc/1/environ",
			"cat /proc/1/maps",
			"ls /proc/1/root/",
		} {
			res := exec(cmd + " && echo REACHED")
			if res.ExitCode == 0 || strings.Contains(res.Stdout, "REACHED") || strings.Contains(res.Stdout, "agent.log") {
				t.Errorf("%q: exit %d, stdout %q: want refused", cmd, res.ExitCode, res.Stdout)
			}
		}
	})
	t.Run("a write storm leaves agent.log within its cap", func(t *testing.T) {
		exec("for fd in 1 2; do head -c 52428800 /dev/zero > /proc/1/fd/$fd; done 2>/dev/null; true")
		log := filepath.Join(s.stateDir(id), "agent.log")
		fi, err := os.Stat(log)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() > agent.LogLimit {
			t.Errorf("agent.log is %d bytes after a write storm, cap %d", fi.Size(), agent.LogLimit)
		}
		if b, _ := os.ReadFile(log); !strings.Contains(string(b), "agent serving") {
			t.Errorf("agent.log lost the agent's own lines: %.200q", b)
		}
	})
	t.Run("users still debug their own processes", func(t *testing.T) {
		if res := exec("sleep 30 & pid=$!; python3 /tmp/ptrace.py $pid; kill $pid"); res.Stdout != "ok\n" {
			t.Errorf("PTRACE_ATTACH to an own child gave %q (stderr %q), want ok", res.Stdout, res.Stderr)
		}
		// Also as another user: the flag resets at execve whoever runs.
		if res := exec("setpriv --reuid 65534 --regid 65534 --clear-groups sh -c 'sleep 30 & pid=$!; python3 /tmp/ptrace.py $pid; kill $pid'"); res.Stdout != "ok\n" {
			t.Errorf("PTRACE_ATTACH to an own child as uid 65534 gave %q (stderr %q), want ok", res.Stdout, res.Stderr)
		}
		if res := exec("strace -f -o /dev/null sh -c 'echo traced'"); res.Stdout != "traced\n" || res.ExitCode != 0 {
			t.Errorf("strace: %+v", res)
		}
		if res := exec("sleep 30 & pid=$!; gdb -batch -p $pid -ex 'info inferiors' 2>&1 | grep -q \"process $pid\" && echo attached; kill $pid"); res.Stdout != "attached\n" {
			t.Errorf("gdb -p of an own process: %+v", res)
		}
		if res := exec("ls -l /proc/self/fd/ >/dev/null && echo ok"); res.Stdout != "ok\n" {
			t.Errorf("a command's own /proc/self/fd: %+v", res)
		}
	})
}

// countingListener is a TCP listener on loopback that counts the
// connections it accepts and closes them at once.
type countingListener struct {
	net.Listener
	n atomic.Int64
}

func listenCounting(t *testing.T) *countingListener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &countingListener{Listener: l}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			c.n.Add(1)
			conn.Close()
		}
	}()
	return c
}

// closedPort returns a loopback HOST:PORT nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// pullError pulls ref through the API and returns the error's status and
// message with host written as HOST, failing if the pull worked.
func pullError(t *testing.T, s *Server, key, ref, host string) (int, string) {
	t.Helper()
	status, b := s.do(t, key, "POST", "/v1/images", `{"ref":"`+ref+`"}`)
	var e api.ErrorBody
	if status == 200 || decodeJSONErr(b, &e) != nil {
		t.Fatalf("pull %s: %d %s: want a JSON error", ref, status, b)
	}
	return status, e.Error.Code + ": " + strings.ReplaceAll(e.Error.Message, host, "HOST")
}

func decodeJSONErr(b []byte, v *api.ErrorBody) error {
	if err := json.Unmarshal(b, v); err != nil {
		return err
	}
	if v.Error.Code == "" {
		return errors.New("no error code")
	}
	return nil
}

// TestImagePullNoSSRF checks that a pull cannot make the server reach
// loopback, private or its own addresses the operator did not list, nor
// tell an open port there from a closed one.
func TestImagePullNoSSRF(t *testing.T) {
	s := sharedServer(t)
	key := s.account(t, "free")
	open := listenCounting(t)
	closed := closedPort(t)
	for _, host := range []string{open.Addr().String(), "localhost:" + strings.Split(open.Addr().String(), ":")[1]} {
		t.Run(host, func(t *testing.T) {
			st1, msg1 := pullError(t, s, key, host+"/x:v1", host)
			st2, msg2 := pullError(t, s, key, closed+"/x:v1", closed)
			t.Logf("refused: %d %s", st1, msg1)
			if st1 != st2 || msg1 != msg2 {
				t.Errorf("an open port answers differently from a closed one:\nopen:   %d %s\nclosed: %d %s", st1, msg1, st2, msg2)
			}
			if st1 != 403 || !strings.Contains(msg1, "--allow-registry") {
				t.Errorf("refused pull: %d %s; want 403 naming --allow-registry", st1, msg1)
			}
		})
	}
	if n := open.n.Load(); n != 0 {
		t.Errorf("the unlisted loopback listener got %d connections", n)
	}
}

// TestImagePullAllowRegistry checks that registries the operator lists
// with --allow-registry are pulled from, and that a listed registry cannot
// redirect the server to an unlisted loopback port.
func TestImagePullAllowRegistry(t *testing.T) {
	reg := imagetest.StartRegistry(t)
	img := imagetest.Image(t, v1.Config{}, imagetest.BusyboxLayer(t))
	ref := reg.Push(t, "test/allowed:v1", img)
	target := listenCounting(t)
	// A registry that serves manifests from reg and redirects every blob
	// to the unlisted listener.
	up, _ := url.Parse("http://" + reg.Host)
	proxy := httputil.NewSingleHostReverseProxy(up)
	redir := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/blobs/") {
			http.Redirect(w, r, "http://"+target.Addr().String()+r.URL.Path, http.StatusTemporaryRedirect)
			return
		}
		proxy.ServeHTTP(w, r)
	})}
	rl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go redir.Serve(rl)
	t.Cleanup(func() { redir.Close() })
	redirHost := rl.Addr().String()

	s := newServer(t, "--allow-registry", reg.Host, "--allow-registry", redirHost)
	key := s.account(t, "free")
	t.Run("listed registry", func(t *testing.T) {
		if status, b := s.do(t, key, "POST", "/v1/images", `{"ref":"`+ref+`"}`); status != 200 {
			t.Fatalf("pull from a listed loopback registry: %d %s", status, b)
		}
		id := s.sandboxWithImage(t, key, ref)
		if out := run(t, s, key, id, "busybox echo pulled"); out != "pulled" {
			t.Errorf("sandbox of the pulled image: %q", out)
		}
	})
	t.Run("redirect to an unlisted port", func(t *testing.T) {
		status, msg := pullError(t, s, key, redirHost+"/test/allowed:v1", redirHost)
		if status != 403 || !strings.Contains(msg, "--allow-registry") || !strings.Contains(msg, target.Addr().String()) {
			t.Errorf("pull redirected to an unlisted port: %d %s; want 403 naming the target and --allow-registry", status, msg)
		}
		if n := target.n.Load(); n != 0 {
			t.Errorf("the redirect target got %d connections", n)
		}
	})
}

// sandboxWithImage creates an ephemeral session of ref and deletes it at
// the end of the test.
func (s *Server) sandboxWithImage(t *testing.T, key, ref string) string {
	t.Helper()
	status, b, id := createWithImage(t, s, key, ref)
	if status != 201 {
		t.Fatalf("create with %s: %d %s", ref, status, b)
	}
	return id
}
