package integration

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/chaserhq/chaser/api"
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

	// An HTTP client on the flooding address is told why.
	resp, err := httpFrom("127.0.0.2", 5*time.Second).Get(s.URL + "/healthz")
	if err != nil {
		t.Fatalf("GET /healthz from the flooding address: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), "too many connections") {
		t.Fatalf("from the flooding address: %s %s", resp.Status, body)
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
