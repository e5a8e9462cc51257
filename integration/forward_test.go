package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/chaserhq/chaser/api"
)

const (
	appPort  = 8000 // testdata/fwdapp.py
	echoPort = 9000 // testdata/echo.py
	testDom  = "chaser.test"
)

// startInSandbox copies a testdata script into the sandbox and runs it in
// the background with port as its argument.
func startInSandbox(t *testing.T, s *Server, key, id, script string, port int) {
	t.Helper()
	src, err := os.ReadFile("testdata/" + script)
	if err != nil {
		t.Fatal(err)
	}
	c := s.Client(key)
	body := string(src)
	res, err := c.Exec(t.Context(), id, api.ExecRequest{Command: "cat > /tmp/" + script, Stdin: &body})
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("copy %s: %v %+v", script, err, res)
	}
	if _, err := c.StartBackground(t.Context(), id, api.ExecRequest{Command: fmt.Sprintf("exec python3 /tmp/%s %d", script, port)}); err != nil {
		t.Fatal(err)
	}
	// Wait until it listens, asking from inside the sandbox.
	probe := fmt.Sprintf(`python3 -c "import socket,time
for i in range(100):
    try:
        socket.create_connection(('127.0.0.1',%d),1).close(); break
    except OSError: time.sleep(0.1)
else: raise SystemExit(1)"`, port)
	if res, err := c.Exec(t.Context(), id, api.ExecRequest{Command: probe}); err != nil || res.ExitCode != 0 {
		t.Fatalf("%s did not start listening on %d: %v %+v", script, port, err, res)
	}
}

// fwd sends a request to a forward URL. host sets the Host header (host
// style); key is sent as a Bearer key when not empty. Redirects are not
// followed.
func fwd(t *testing.T, s *Server, method, host, path, key string, body io.Reader, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, s.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func wantStatus(t *testing.T, resp *http.Response, body string, status int) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("%s %s: status %d, want %d: %s", resp.Request.Method, resp.Request.URL, resp.StatusCode, status, body)
	}
}

func TestForward(t *testing.T) {
	s := newServer(t, "--domain", testDom)
	key := s.account(t, "paid")
	other := s.account(t, "paid")
	id := s.sandbox(t, key)
	startInSandbox(t, s, key, id, "fwdapp.py", appPort)
	base := fmt.Sprintf("/s/%s/forward/%d", id, appPort)
	host := id + "." + testDom

	t.Run("GET", func(t *testing.T) {
		resp, body := fwd(t, s, "GET", "", base+"/hello", key, nil)
		wantStatus(t, resp, body, 200)
		if body != "hello" {
			t.Fatalf("body %q", body)
		}
	})
	t.Run("POST with body", func(t *testing.T) {
		payload := strings.Repeat("x", 300<<10) // larger than any one buffer
		resp, body := fwd(t, s, "POST", "", base+"/echo", key, strings.NewReader(payload))
		wantStatus(t, resp, body, 200)
		if body != "got POST: "+payload {
			t.Fatalf("body of %d bytes does not echo the payload", len(body))
		}
	})
	t.Run("forwarded headers and no credentials reach the app", func(t *testing.T) {
		resp, body := fwd(t, s, "GET", "", base+"/headers?a=b%20c", key, nil, "Cookie", "app=1", "X-Forwarded-For", "10.1.2.3")
		wantStatus(t, resp, body, 200)
		var got struct {
			Path    string            `json:"path"`
			Headers map[string]string `json:"headers"`
		}
		decodeJSON(t, []byte(body), &got)
		h := got.Headers
		want := map[string]string{
			"x-forwarded-prefix": base, "x-forwarded-host": s.Addr, "x-forwarded-proto": "http",
			"x-forwarded-for": "10.1.2.3, 127.0.0.1", "host": "localhost:" + strconv.Itoa(appPort), "cookie": "app=1",
		}
		for k, v := range want {
			if h[k] != v {
				t.Errorf("header %s = %q, want %q", k, h[k], v)
			}
		}
		if _, ok := h["authorization"]; ok {
			t.Error("the Chaser key reached the app")
		}
		if got.Path != "/headers?a=b%20c" {
			t.Errorf("app saw path %q", got.Path)
		}
	})
	t.Run("streaming response", func(t *testing.T) {
		req, _ := http.NewRequestWithContext(t.Context(), "GET", s.URL+base+"/stream", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		br := bufio.NewReader(resp.Body)
		first, err := br.ReadString('\n')
		if err != nil || first != "first\n" {
			t.Fatalf("first line %q, %v", first, err)
		}
		got := time.Now()
		second, _ := br.ReadString('\n')
		if second != "second\n" {
			t.Fatalf("second line %q", second)
		}
		// The app sleeps 1.5 s between the lines: a buffering proxy
		// would deliver both at once.
		if d := time.Since(got); d < time.Second {
			t.Fatalf("the first line arrived only %v before the second: the answer was buffered", d)
		}
	})
	t.Run("redirects stay under the prefix", func(t *testing.T) {
		for path, want := range map[string]string{
			"/redirect":      base + "/hello",
			"/redirect-abs":  base + "/hello?x=1",
			"/redirect-away": "https://example.com/",
		} {
			resp, body := fwd(t, s, "GET", "", base+path, key, nil)
			wantStatus(t, resp, body, 302)
			if loc := resp.Header.Get("Location"); loc != want {
				t.Errorf("%s: Location %q, want %q", path, loc, want)
			}
		}
		resp, body := fwd(t, s, "GET", "", base+"/cookie", key, nil)
		wantStatus(t, resp, body, 200)
		if c := resp.Header.Get("Set-Cookie"); !strings.Contains(c, "Path="+base+"/") {
			t.Errorf("app cookie not moved under the prefix: %q", c)
		}
		resp, body = fwd(t, s, "GET", "", base, key, nil)
		wantStatus(t, resp, body, http.StatusTemporaryRedirect)
		if loc := resp.Header.Get("Location"); loc != base+"/" {
			t.Errorf("prefix without slash redirects to %q", loc)
		}
	})
	t.Run("WebSocket path style", func(t *testing.T) {
		ws, _, err := websocket.Dial(t.Context(), "ws://"+s.Addr+base+"/ws", &websocket.DialOptions{
			HTTPHeader: http.Header{"Authorization": {"Bearer " + key}},
		})
		if err != nil {
			t.Fatal(err)
		}
		defer ws.CloseNow()
		for _, msg := range []string{"ping", strings.Repeat("y", 1000)} {
			if err := ws.Write(t.Context(), websocket.MessageText, []byte(msg)); err != nil {
				t.Fatal(err)
			}
			typ, got, err := ws.Read(t.Context())
			if err != nil || typ != websocket.MessageText || string(got) != "echo:"+msg {
				t.Fatalf("read %v %q %v", typ, got, err)
			}
		}
		ws.Close(websocket.StatusNormalClosure, "")
	})
	t.Run("host style", func(t *testing.T) {
		resp, body := fwd(t, s, "GET", host, fmt.Sprintf("/forward/%d/hello", appPort), key, nil)
		wantStatus(t, resp, body, 200)
		if body != "hello" {
			t.Fatalf("body %q", body)
		}
		resp, body = fwd(t, s, "GET", host+":"+strings.Split(s.Addr, ":")[1], fmt.Sprintf("/forward/%d/redirect", appPort), key, nil)
		wantStatus(t, resp, body, 302)
		if loc := resp.Header.Get("Location"); loc != fmt.Sprintf("/forward/%d/hello", appPort) {
			t.Errorf("host-style Location %q", loc)
		}
		ws, _, err := websocket.Dial(t.Context(), fmt.Sprintf("ws://%s/forward/%d/ws", s.Addr, appPort), &websocket.DialOptions{
			Host: host, HTTPHeader: http.Header{"Authorization": {"Bearer " + key}},
		})
		if err != nil {
			t.Fatalf("host-style WebSocket: %v", err)
		}
		if err := ws.Write(t.Context(), websocket.MessageBinary, []byte{0, 1, 2}); err != nil {
			t.Fatal(err)
		}
		if _, got, err := ws.Read(t.Context()); err != nil || string(got) != "echo:\x00\x01\x02" {
			t.Fatalf("host-style WebSocket echo %q %v", got, err)
		}
		ws.Close(websocket.StatusNormalClosure, "")
		// Another domain is not ours.
		resp, body = fwd(t, s, "GET", id+".example.org", fmt.Sprintf("/forward/%d/hello", appPort), key, nil)
		expectError(t, resp.StatusCode, []byte(body), 404, "not_found")
	})
	t.Run("token sets a cookie", func(t *testing.T) {
		for _, tc := range []struct{ name, host, path, cookiePath string }{
			{"path style", "", base + "/hello", "/s/" + id + "/forward/"},
			{"host style", host, fmt.Sprintf("/forward/%d/hello", appPort), "/forward/"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				resp, body := fwd(t, s, "GET", tc.host, tc.path+"?token="+key+"&q=1", "", nil)
				wantStatus(t, resp, body, http.StatusTemporaryRedirect)
				if loc := resp.Header.Get("Location"); loc != tc.path+"?q=1" {
					t.Fatalf("Location %q: the key must leave the URL", loc)
				}
				cookies := resp.Cookies()
				if len(cookies) != 1 || !cookies[0].HttpOnly || cookies[0].Path != tc.cookiePath || cookies[0].Domain != "" || strings.Contains(cookies[0].Value, key) {
					t.Fatalf("cookie %+v", cookies)
				}
				cookie := cookies[0].Name + "=" + cookies[0].Value
				resp, body = fwd(t, s, "GET", tc.host, tc.path, "", nil, "Cookie", cookie)
				wantStatus(t, resp, body, 200)
				if body != "hello" {
					t.Fatalf("body %q", body)
				}
				// A tampered cookie is refused.
				resp, body = fwd(t, s, "GET", tc.host, tc.path, "", nil, "Cookie", cookie+"x")
				expectError(t, resp.StatusCode, []byte(body), 401, "unauthenticated")
			})
		}
		// A cookie of this session opens no other session.
		resp, _ := fwd(t, s, "GET", "", base+"/hello?token="+key, "", nil)
		cookie := resp.Cookies()[0]
		id2 := s.sandbox(t, key)
		resp, body := fwd(t, s, "GET", "", fmt.Sprintf("/s/%s/forward/%d/hello", id2, appPort), "", nil, "Cookie", cookie.Name+"="+cookie.Value)
		expectError(t, resp.StatusCode, []byte(body), 401, "unauthenticated")
		// A bad token is refused.
		resp, body = fwd(t, s, "GET", "", base+"/hello?token=nope", "", nil)
		expectError(t, resp.StatusCode, []byte(body), 401, "unauthenticated")
	})
	t.Run("no credentials", func(t *testing.T) {
		resp, body := fwd(t, s, "GET", "", base+"/hello", "", nil)
		expectError(t, resp.StatusCode, []byte(body), 401, "unauthenticated")
		resp, body = fwd(t, s, "GET", "", base+"/hello", "not-a-key", nil)
		expectError(t, resp.StatusCode, []byte(body), 401, "unauthenticated")
	})
	t.Run("other account gets 404", func(t *testing.T) {
		resp, body := fwd(t, s, "GET", "", base+"/hello", other, nil)
		expectError(t, resp.StatusCode, []byte(body), 404, "not_found")
		resp, body = fwd(t, s, "GET", host, fmt.Sprintf("/forward/%d/hello", appPort), other, nil)
		expectError(t, resp.StatusCode, []byte(body), 404, "not_found")
		resp, body = fwd(t, s, "GET", "", base+"/hello?token="+other, "", nil)
		expectError(t, resp.StatusCode, []byte(body), 404, "not_found")
		st, b := s.do(t, other, "PUT", fmt.Sprintf("/v1/sessions/%s/ports/%d", id, appPort), `{"public":true}`)
		expectError(t, st, b, 404, "not_found")
		st, b = s.do(t, other, "GET", fmt.Sprintf("/v1/sessions/%s/tunnel/%d", id, appPort), "")
		expectError(t, st, b, 404, "not_found")
	})
	t.Run("public port", func(t *testing.T) {
		portPath := fmt.Sprintf("/v1/sessions/%s/ports/%d", id, appPort)
		st, b := s.do(t, key, "PUT", portPath, `{"public":true}`)
		if st != 200 {
			t.Fatalf("PUT: %d %s", st, b)
		}
		var p api.Port
		decodeJSON(t, b, &p)
		wantURL := fmt.Sprintf("http://%s:%s/forward/%d/", host, strings.Split(s.Addr, ":")[1], appPort)
		if !p.Public || p.Port != appPort || p.Path != base+"/" || p.URL != wantURL {
			t.Fatalf("port %+v", p)
		}
		resp, body := fwd(t, s, "GET", "", base+"/hello", "", nil)
		wantStatus(t, resp, body, 200)
		resp, body = fwd(t, s, "GET", host, fmt.Sprintf("/forward/%d/hello", appPort), "", nil)
		wantStatus(t, resp, body, 200)
		// Another account may look, as anyone may; the app's own
		// Authorization passes through to it.
		resp, body = fwd(t, s, "GET", "", base+"/hello", other, nil)
		wantStatus(t, resp, body, 200)
		// A stranger's ?token= on a public port earns no cookie.
		resp, body = fwd(t, s, "GET", "", base+"/hello?token="+other, "", nil)
		wantStatus(t, resp, body, 200)
		if len(resp.Cookies()) != 0 {
			t.Errorf("another account got a cookie for the session: %v", resp.Cookies())
		}
		resp, body = fwd(t, s, "GET", "", base+"/headers", "app-token", nil)
		wantStatus(t, resp, body, 200)
		if !strings.Contains(body, `"authorization": "Bearer app-token"`) {
			t.Errorf("the app's own Authorization did not pass: %s", body)
		}
		// Only that port is public.
		resp, body = fwd(t, s, "GET", "", fmt.Sprintf("/s/%s/forward/%d/", id, echoPort), "", nil)
		expectError(t, resp.StatusCode, []byte(body), 401, "unauthenticated")
		st, b = s.do(t, key, "GET", fmt.Sprintf("/v1/sessions/%s/ports", id), "")
		var l api.PortList
		decodeJSON(t, b, &l)
		// The list holds the listening ports too; only appPort is public.
		public := 0
		for _, p := range l.Ports {
			if p.Public {
				public++
			}
			if p.Public && (p.Port != appPort || !p.Listening) {
				t.Errorf("list: port %+v", p)
			}
		}
		if st != 200 || public != 1 {
			t.Fatalf("list: %d %s", st, b)
		}
		st, b = s.do(t, key, "PUT", portPath, `{"public":false}`)
		if st != 200 {
			t.Fatalf("PUT private: %d %s", st, b)
		}
		resp, body = fwd(t, s, "GET", "", base+"/hello", "", nil)
		expectError(t, resp.StatusCode, []byte(body), 401, "unauthenticated")
		st, b = s.do(t, key, "GET", portPath, "")
		decodeJSON(t, b, &p)
		if st != 200 || p.Public {
			t.Fatalf("GET port after making it private: %d %s", st, b)
		}
	})
	t.Run("nothing listening is 502", func(t *testing.T) {
		resp, body := fwd(t, s, "GET", "", fmt.Sprintf("/s/%s/forward/8999/", id), key, nil)
		expectError(t, resp.StatusCode, []byte(body), 502, "unavailable")
		if !strings.Contains(body, "nothing is listening on port 8999") {
			t.Errorf("unclear message: %s", body)
		}
		st, b := s.do(t, key, "GET", fmt.Sprintf("/v1/sessions/%s/tunnel/8999", id), "")
		expectError(t, st, b, 502, "unavailable")
	})
	t.Run("bad port is 400", func(t *testing.T) {
		for _, p := range []string{"0", "65536", "-1", "http", "99999999999999999999"} {
			resp, body := fwd(t, s, "GET", "", "/s/"+id+"/forward/"+p+"/", key, nil)
			expectError(t, resp.StatusCode, []byte(body), 400, "invalid_argument")
			resp, body = fwd(t, s, "GET", host, "/forward/"+p+"/", key, nil)
			expectError(t, resp.StatusCode, []byte(body), 400, "invalid_argument")
			st, b := s.do(t, key, "GET", "/v1/sessions/"+id+"/tunnel/"+p, "")
			expectError(t, st, b, 400, "invalid_argument")
			st, b = s.do(t, key, "PUT", "/v1/sessions/"+id+"/ports/"+p, `{"public":true}`)
			expectError(t, st, b, 400, "invalid_argument")
		}
	})
	t.Run("chaser forward", func(t *testing.T) {
		startInSandbox(t, s, key, id, "echo.py", echoPort)
		testForwardCLI(t, s, key, id)
	})
	t.Run("deleting the session ends its connections", func(t *testing.T) {
		ws, _, err := websocket.Dial(t.Context(), "ws://"+s.Addr+base+"/ws", &websocket.DialOptions{
			HTTPHeader: http.Header{"Authorization": {"Bearer " + key}},
		})
		if err != nil {
			t.Fatal(err)
		}
		defer ws.CloseNow()
		f := startForward(t, s, key, id, strconv.Itoa(echoPort), "0")
		raw, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", f.info.LocalPort))
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		raw.SetDeadline(time.Now().Add(20 * time.Second))
		if _, err := io.ReadFull(raw, make([]byte, 5)); err != nil { // "echo:"
			t.Fatal(err)
		}
		if err := s.Client(key).DeleteSession(t.Context(), id); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
		defer cancel()
		if _, _, err := ws.Read(ctx); err == nil || ctx.Err() != nil {
			t.Errorf("WebSocket still open after the session was deleted: %v", err)
		}
		if _, err := io.Copy(io.Discard, raw); err != nil {
			t.Errorf("forwarded TCP connection not ended after the session was deleted: %v", err)
		}
		resp, body := fwd(t, s, "GET", "", base+"/hello", key, nil)
		expectError(t, resp.StatusCode, []byte(body), 409, "failed_precondition") // ended: its record says why
		stopForward(t, f)                                                         // before the leak check: its command line names the session
		if left := s.leaks(t, id); len(left) > 0 {
			t.Errorf("left behind: %v", left)
		}
	})
}

// forwardProc is a running `chaser forward`.
type forwardProc struct {
	cmd  *exec.Cmd
	info struct {
		LocalPort int    `json:"local_port"`
		URL       string `json:"url"`
	}
	stderr *strings.Builder
}

func startForward(t *testing.T, s *Server, key string, args ...string) *forwardProc {
	t.Helper()
	return startForwardEnv(t, s, key, nil, args...)
}

func startForwardEnv(t *testing.T, s *Server, key string, env []string, args ...string) *forwardProc {
	t.Helper()
	f := &forwardProc{stderr: &strings.Builder{}}
	f.cmd = exec.Command(binary, append([]string{"forward", "--json"}, args...)...)
	f.cmd.Env = append(append(os.Environ(), "CHASER_API_URL="+s.URL, "CHASER_API_KEY="+key), env...)
	f.cmd.Stderr = lockedWriter{&sync.Mutex{}, f.stderr}
	out, err := f.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := f.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if f.cmd.ProcessState == nil {
			f.cmd.Process.Kill()
			f.cmd.Wait()
		}
	})
	if err := json.NewDecoder(out).Decode(&f.info); err != nil || f.info.LocalPort == 0 {
		t.Fatalf("chaser forward printed no address: %v; stderr: %s", err, f.stderr)
	}
	return f
}

func testForwardCLI(t *testing.T, s *Server, key, id string) {
	t.Run("parallel HTTP", func(t *testing.T) {
		f := startForward(t, s, key, id, strconv.Itoa(appPort), "0")
		var wg sync.WaitGroup
		errs := make(chan error, 20)
		for i := range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Its own connection each, so 20 tunnels run at once.
				cl := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
				resp, err := cl.Post(fmt.Sprintf("http://127.0.0.1:%d/echo", f.info.LocalPort), "text/plain", strings.NewReader(fmt.Sprint("req", i)))
				if err != nil {
					errs <- err
					return
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				if want := fmt.Sprint("got POST: req", i); string(b) != want {
					errs <- fmt.Errorf("request %d: %d %q, want %q", i, resp.StatusCode, b, want)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		stopForward(t, f)
	})
	t.Run("raw TCP", func(t *testing.T) {
		f := startForward(t, s, key, id, strconv.Itoa(echoPort), "0")
		var wg sync.WaitGroup
		for i := range 5 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", f.info.LocalPort), 5*time.Second)
				if err != nil {
					t.Error(err)
					return
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(20 * time.Second))
				msg := strings.Repeat(fmt.Sprintf("conn %d;", i), 20000) // ~160 KB, many messages
				go func() {
					c.Write([]byte(msg))
					// Half-close: the echo server answers until EOF and
					// then closes, so the reply ends only if the
					// half-close travelled through the tunnel.
					c.(*net.TCPConn).CloseWrite()
				}()
				got, err := io.ReadAll(c)
				if err != nil || string(got) != "echo:"+msg {
					t.Errorf("conn %d: echo of %d bytes (want %d) broken: %v", i, len(got), len(msg)+5, err)
				}
			}()
		}
		wg.Wait()
		stopForward(t, f)
	})
	t.Run("default local port and nothing listening", func(t *testing.T) {
		f := startForward(t, s, key, id, "8999")
		if f.info.LocalPort == 0 {
			t.Fatal("no local port")
		}
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", f.info.LocalPort))
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil {
			t.Fatalf("a connection to a closed port stayed open: %d %v", n, err)
		}
		c.Close()
		deadline := time.Now().Add(5 * time.Second)
		for !strings.Contains(f.stderr.String(), "nothing is listening on port 8999") {
			if time.Now().After(deadline) {
				t.Fatalf("no clear message on stderr: %q", f.stderr.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
		stopForward(t, f)
	})
	t.Run("taken local port and --open without a browser", func(t *testing.T) {
		// The default local port is the guest port: hold it (unless
		// something on this host already does).
		takenPort := appPort
		if taken, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", appPort)); err == nil {
			defer taken.Close()
		}
		// No xdg-open on PATH: the URL is printed instead.
		f := startForwardEnv(t, s, key, []string{"PATH=" + t.TempDir()}, "--open", id, strconv.Itoa(appPort))
		if f.info.LocalPort == takenPort || f.info.LocalPort == 0 {
			t.Fatalf("listened on %d although %d is taken", f.info.LocalPort, takenPort)
		}
		resp, err := http.Get(f.info.URL + "hello")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "hello" {
			t.Fatalf("through the fallback port: %q", b)
		}
		stopForward(t, f)
		if !strings.Contains(f.stderr.String(), "Open "+f.info.URL) || !strings.Contains(f.stderr.String(), "is taken") {
			t.Errorf("stderr %q does not say which URL to open and that the port was taken", f.stderr.String())
		}
	})
	t.Run("unknown session", func(t *testing.T) {
		r := s.cli(t, key, nil, "forward", "s-doesnotexist", "80", "0")
		if r.Code == 0 || !strings.Contains(r.Stderr, "not found") {
			t.Fatalf("code %d, stderr %q", r.Code, r.Stderr)
		}
	})
}

// stopForward sends SIGINT (Ctrl-C) with a connection still open and
// expects a clean exit that frees the port.
func stopForward(t *testing.T, f *forwardProc) {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", f.info.LocalPort)
	open, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	time.Sleep(200 * time.Millisecond) // let the tunnel of `open` start
	if err := f.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- f.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("chaser forward did not exit cleanly on SIGINT: %v; stderr: %s", err, f.stderr)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("chaser forward still runs 10s after SIGINT; stderr: %s", f.stderr)
	}
	open.SetDeadline(time.Now().Add(5 * time.Second))
	// It may hold a banner (the echo server's); then it must end.
	if _, err := io.Copy(io.Discard, open); err != nil {
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Error("an open connection survived the stop")
		}
	}
	if l, err := net.Listen("tcp", addr); err != nil {
		t.Errorf("port not freed: %v", err)
	} else {
		l.Close()
	}
}

// TestForwardCookieSurvivesRestart checks that a browser's forward cookie
// still opens a session that survived a server crash (the signing key is
// kept in the data dir), and that a public port stays public.
func TestForwardCookieSurvivesRestart(t *testing.T) {
	s := newServer(t)
	key := s.account(t, "paid")
	sess, err := s.Client(key).CreateSession(t.Context(), api.CreateSessionRequest{Type: "sandbox", Ephemeral: true})
	if err != nil {
		t.Fatal(err)
	}
	startInSandbox(t, s, key, sess.ID, "fwdapp.py", appPort)
	base := fmt.Sprintf("/s/%s/forward/%d", sess.ID, appPort)
	resp, _ := fwd(t, s, "GET", "", base+"/hello?token="+key, "", nil)
	if len(resp.Cookies()) != 1 {
		t.Fatalf("no forward cookie: %v", resp.Header)
	}
	cookie := resp.Cookies()[0]
	if _, err := s.Client(key).SetPortPublic(t.Context(), sess.ID, echoPort, true); err != nil {
		t.Fatal(err)
	}
	s.kill()
	s2 := startServer(t, s.DataDir)
	defer s2.stop()
	resp, body := fwd(t, s2, "GET", "", base+"/hello", "", nil, "Cookie", cookie.Name+"="+cookie.Value)
	wantStatus(t, resp, body, 200)
	p, err := s2.Client(key).Port(t.Context(), sess.ID, echoPort)
	if err != nil || !p.Public {
		t.Fatalf("public port after restart: %+v %v", p, err)
	}
	if p, _ := s2.Client(key).Port(t.Context(), sess.ID, appPort); p.Public {
		t.Fatal("a private port became public")
	}
	if fi, err := statHost(filepath.Join(s.DataDir, "forward.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("forward.key: %v %v", fi, err)
	}
}

// appSaw is what testdata/fwdapp.py received: /headers and /ws-headers.
type appSaw struct {
	Path    string            `json:"path"`
	Headers map[string]string `json:"headers"`
}

// TestForwardCredentialsNeverReachApp: whichever Chaser credentials a
// request to a forwarded port carries — Authorization: Bearer KEY,
// ?token=KEY, the chaser_forward cookie, alone or together — none reaches
// the app, in path and host style, for plain HTTP and for WebSocket
// upgrades; the app's own cookies and query pass. A WebSocket upgrade with
// ?token= is answered 101 at once (a WebSocket client cannot follow a
// redirect), with the grant cookie on the 101.
func TestForwardCredentialsNeverReachApp(t *testing.T) {
	s := newServer(t, "--domain", testDom)
	key := s.account(t, "paid")
	id := s.sandbox(t, key)
	startInSandbox(t, s, key, id, "fwdapp.py", appPort)
	resp, _ := fwd(t, s, "GET", "", fmt.Sprintf("/s/%s/forward/%d/hello?token=%s", id, appPort, key), "", nil)
	if len(resp.Cookies()) != 1 {
		t.Fatalf("no grant cookie: %v", resp.Header)
	}
	grant := resp.Cookies()[0].Value

	secrets := []string{key, grant, forwardCookieName}
	check := func(t *testing.T, saw appSaw, raw string) {
		t.Helper()
		for _, sec := range secrets {
			if strings.Contains(raw, sec) {
				t.Errorf("the app received %q: %s", sec, raw)
			}
		}
		if _, ok := saw.Headers["authorization"]; ok {
			t.Errorf("an Authorization header reached the app: %s", raw)
		}
		if strings.Contains(saw.Path, "token") || !strings.Contains(saw.Path, "q=1") {
			t.Errorf("the app saw path %q, want its query without the token", saw.Path)
		}
		if c := saw.Headers["cookie"]; c != "app=1" {
			t.Errorf("the app got cookies %q, want exactly its own app=1", c)
		}
	}
	// The E2B form PORT-ID.DOMAIN: the Bearer key authorizes; neither it
	// nor a key in ?token= nor the grant cookie reaches the app.
	t.Run("port-id host/bearer+token+cookie/HTTP", func(t *testing.T) {
		req, _ := http.NewRequestWithContext(t.Context(), "POST", s.URL+"/headers?q=1&token="+key, nil)
		req.Host = fmt.Sprintf("%d-%s.%s", appPort, id, testDom)
		req.Header = http.Header{"Cookie": {forwardCookieName + "=" + grant + "; app=1"}, "Authorization": {"Bearer " + key}}
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		wantStatus(t, resp, string(b), 200)
		var saw appSaw
		decodeJSON(t, b, &saw)
		check(t, saw, string(b))
	})
	for _, style := range []struct{ name, host, prefix string }{
		{"path style", "", fmt.Sprintf("/s/%s/forward/%d", id, appPort)},
		{"host style", id + "." + testDom, fmt.Sprintf("/forward/%d", appPort)},
	} {
		for _, creds := range []string{"bearer", "token", "cookie", "bearer+token", "bearer+cookie", "token+cookie", "bearer+token+cookie"} {
			bearer := strings.Contains(creds, "bearer")
			token := strings.Contains(creds, "token")
			cookie := "app=1"
			if strings.Contains(creds, "cookie") {
				cookie = forwardCookieName + "=" + grant + "; app=1"
			}
			query := "?q=1"
			if token {
				query += "&token=" + key
			}
			hdr := http.Header{"Cookie": {cookie}}
			if bearer {
				hdr.Set("Authorization", "Bearer "+key)
			}
			t.Run(style.name+"/"+creds+"/HTTP", func(t *testing.T) {
				methods := []string{"POST"}
				if !token {
					methods = append(methods, "GET") // with ?token= a GET is redirected (tested in TestForward)
				}
				for _, m := range methods {
					req, _ := http.NewRequestWithContext(t.Context(), m, s.URL+style.prefix+"/headers"+query, nil)
					req.Host = style.host
					req.Header = hdr.Clone()
					resp, err := noRedirect.Do(req)
					if err != nil {
						t.Fatal(err)
					}
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					wantStatus(t, resp, string(b), 200)
					var saw appSaw
					decodeJSON(t, b, &saw)
					check(t, saw, string(b))
				}
			})
			t.Run(style.name+"/"+creds+"/WebSocket", func(t *testing.T) {
				ws, resp, err := websocket.Dial(t.Context(), "ws://"+s.Addr+style.prefix+"/ws-headers"+query, &websocket.DialOptions{
					Host: style.host, HTTPHeader: hdr.Clone(),
				})
				if err != nil {
					status := 0
					if resp != nil {
						status = resp.StatusCode
					}
					t.Fatalf("upgrade: %d %v (a WebSocket client cannot follow a redirect)", status, err)
				}
				defer ws.CloseNow()
				if token && (len(resp.Cookies()) != 1 || resp.Cookies()[0].Name != forwardCookieName) {
					t.Errorf("no grant cookie on the 101: %v", resp.Header)
				}
				_, b, err := ws.Read(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				var saw appSaw
				decodeJSON(t, b, &saw)
				check(t, saw, string(b))
				ws.Close(websocket.StatusNormalClosure, "")
			})
		}
	}
	// An upgrade of the prefix without its slash goes to the app's "/"
	// (where fwdapp.py has no WebSocket: its 404), not to a redirect.
	_, resp, err := websocket.Dial(t.Context(), fmt.Sprintf("ws://%s/s/%s/forward/%d?token=%s", s.Addr, id, appPort, key), &websocket.DialOptions{
		HTTPClient: noRedirect,
	})
	if err == nil || resp == nil || resp.StatusCode != 404 || resp.Header.Get("Location") != "" {
		t.Fatalf("upgrade of the bare prefix: %v %v, want the app's 404", resp, err)
	}
	// A private port with the grant cookie passes the app's own
	// Authorization (not a Chaser key) through.
	resp, body := fwd(t, s, "GET", "", fmt.Sprintf("/s/%s/forward/%d/headers?q=1", id, appPort), "", nil,
		"Authorization", "Bearer app-jwt", "Cookie", forwardCookieName+"="+grant+"; app=1")
	wantStatus(t, resp, body, 200)
	var saw appSaw
	decodeJSON(t, []byte(body), &saw)
	if saw.Headers["authorization"] != "Bearer app-jwt" || saw.Headers["cookie"] != "app=1" {
		t.Errorf("the app's own credentials: %s", body)
	}
}

const forwardCookieName = "chaser_forward"

// TestForwardAppCookiesStayInTheirSession has a forwarded app set cookies
// with a Domain attribute, as an app may to reach its neighbours: the
// answer reaches the browser without Domain, so each cookie is host-only
// and, in path style, under the session's prefix. A cookie jar (what a
// browser keeps) then offers none of them to another session's URLs, host
// or path style.
func TestForwardAppCookiesStayInTheirSession(t *testing.T) {
	s := newServer(t, "--domain", testDom)
	key := s.account(t, "paid")
	id := s.sandbox(t, key)
	startInSandbox(t, s, key, id, "fwdapp.py", appPort)
	const other = "s-0123456789abcdef" // another session's id, as it would look
	set := []string{
		"a=1; Domain=" + testDom + "; Path=/",
		"b=2; domain=." + testDom,
		"c=3; Path=/; DOMAIN=" + other + "." + testDom + "; HttpOnly",
		"d=4; Max-Age=600; Domain=" + id + "." + testDom,
		"e=5",
	}
	q := url.Values{"c": set}.Encode()
	// Where the same browser could go next: another session, in both styles.
	elsewhere := []string{
		fmt.Sprintf("http://%s.%s/forward/%d/", other, testDom, appPort),
		fmt.Sprintf("http://%s/s/%s/forward/%d/", testDom, other, appPort),
		fmt.Sprintf("http://%s/v1/sessions", testDom),
	}
	for _, tc := range []struct{ name, host, prefix string }{
		// Path style on the bare domain, whose cookies could otherwise
		// cover every session's host.
		{"path style", testDom, fmt.Sprintf("/s/%s/forward/%d", id, appPort)},
		{"host style", id + "." + testDom, fmt.Sprintf("/forward/%d", appPort)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := fwd(t, s, "GET", tc.host, tc.prefix+"/set-cookie?"+q, key, nil)
			wantStatus(t, resp, body, 200)
			raw := resp.Header.Values("Set-Cookie")
			if len(raw) != len(set) {
				t.Fatalf("Set-Cookie %q, want %d cookies", raw, len(set))
			}
			for _, c := range raw {
				if strings.Contains(strings.ToLower(c), "domain") {
					t.Errorf("Set-Cookie %q keeps a Domain", c)
				}
			}
			jar, err := cookiejar.New(nil)
			if err != nil {
				t.Fatal(err)
			}
			own, _ := url.Parse("http://" + tc.host + tc.prefix + "/set-cookie")
			jar.SetCookies(own, resp.Cookies())
			for _, u := range elsewhere {
				where, _ := url.Parse(u)
				if got := jar.Cookies(where); len(got) > 0 {
					t.Errorf("the app's cookies %v reach %s", got, u)
				}
			}
			home, _ := url.Parse("http://" + tc.host + tc.prefix + "/")
			if got := jar.Cookies(home); len(got) != len(set) {
				t.Errorf("the app's own URL gets cookies %v, want all %d", got, len(set))
			}
		})
	}
}
