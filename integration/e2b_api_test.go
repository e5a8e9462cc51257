package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/e2b/spec/filesystem"
	"github.com/chaserhq/chaser/internal/e2b/spec/process"
)

// e2bDetail is E2B's SandboxDetail (GET /sandboxes/{id}) and, without
// the token and domain, its ListedSandbox.
type e2bDetail struct {
	SandboxID       string            `json:"sandboxID"`
	TemplateID      string            `json:"templateID"`
	ClientID        string            `json:"clientID"`
	StartedAt       time.Time         `json:"startedAt"`
	EndAt           time.Time         `json:"endAt"`
	CPUCount        int64             `json:"cpuCount"`
	MemoryMB        int64             `json:"memoryMB"`
	DiskSizeMB      int64             `json:"diskSizeMB"`
	Metadata        map[string]string `json:"metadata"`
	State           string            `json:"state"`
	EnvdVersion     string            `json:"envdVersion"`
	EnvdAccessToken string            `json:"envdAccessToken"`
}

// e2bCall sends an E2B control-plane request and decodes a 2xx answer
// into v (when not nil); it returns the status, headers and body.
func (s *Server) e2bCall(t *testing.T, key, method, path, body string, v any) (int, http.Header, []byte) {
	t.Helper()
	resp := s.e2bDo(t, key, method, path, body)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if v != nil && resp.StatusCode < 300 {
		decodeJSON(t, b, v)
	}
	return resp.StatusCode, resp.Header, b
}

// wantE2BError checks an E2B error answer: the status, and the body
// {"code": status, "message": "…"} the SDK reads.
func wantE2BError(t *testing.T, what string, status int, b []byte, want int) {
	t.Helper()
	var e struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(b, &e); err != nil || status != want || e.Code != want || e.Message == "" {
		t.Errorf("%s: %d %s, want %d with {\"code\": %d, \"message\": …}", what, status, b, want, want)
	}
}

// TestE2BAPI walks the control plane and envd of issue 16 at the HTTP
// level, where the JS SDK flow (TestE2BSDK) does not reach: both create
// paths, connect/resume, kill, timeout within the tier's TTL, info, list
// with state and metadata filters and X-Next-Token paging (Chaser's own
// sessions included with valid fields), pause, 429 with Retry-After, envd
// keepalives, users, the access token, the traffic token of private ports,
// and another account's sandbox on both planes.
func TestE2BAPI(t *testing.T) {
	cfg := writeConfig(t, `
tiers:
  free: {max_sandboxes: 2, ttl: 10m}
  paid: {max_sandboxes: 20}
`)
	s := newServer(t, "--domain", testDom, "--config", cfg)
	key := s.account(t, api.TierPaid)
	u, _ := url.Parse(s.URL)

	var v1, v2 e2bSandbox
	top := t
	t.Run("create", func(t *testing.T) {
		run := fmt.Sprint(time.Now().UnixNano())
		for _, path := range []string{"/sandboxes", "/v2/sandboxes"} {
			var sb e2bSandbox
			status, _, b := s.e2bCall(t, key, "POST", path, `{"templateID":"base","timeout":120,"metadata":{"made":"`+run+`"}}`, &sb)
			if status != http.StatusCreated {
				t.Fatalf("POST %s: %d %s", path, status, b)
			}
			top.Cleanup(func() { s.e2bKill(key, sb.SandboxID) })
			if sb.SandboxID == "" || sb.TemplateID != "base" || sb.ClientID == "" || sb.EnvdVersion != "0.6.13" ||
				!regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(sb.EnvdAccessToken) || strings.Contains(sb.EnvdAccessToken, key) ||
				sb.Domain == nil || *sb.Domain != testDom+":"+u.Port() || sb.TrafficAccessToken != nil {
				t.Errorf("POST %s answered %s", path, b)
			}
			if path == "/sandboxes" {
				v1 = sb
			} else {
				v2 = sb
			}
		}
		if v1.EnvdAccessToken == v2.EnvdAccessToken {
			t.Errorf("two sandboxes share one envdAccessToken")
		}
		for _, body := range []string{`{"timeout":0}`, `{"timeout":86401}`, `{"autoPause":true}`, `{"templateID":`, `{"noSuchField":1}`,
			`{"autoPause":true,"autoPauseMemory":false}`, `{"autoResume":{"enabled":true}}`, `{"mcp":{"x":{}}}`, `{"volumeMounts":[{"name":"v","path":"/d"}]}`} {
			status, _, b := s.e2bCall(t, key, "POST", "/v2/sandboxes", body, nil)
			wantE2BError(t, "create "+body, status, b, 400)
		}
		// What the Python SDK sends by default, and null for what it may
		// leave out: made.
		for _, body := range []string{`{"templateID":"base","timeout":60,"metadata":{},"envVars":{},"secure":true,"allow_internet_access":true}`,
			`{"autoPause":false,"mcp":null,"iam":null,"autoResume":{"enabled":false}}`} {
			status, _, b := s.e2bCall(t, key, "POST", "/sandboxes", body, nil)
			if status != 201 {
				t.Errorf("create %s: %d %s", body, status, b)
				continue
			}
			var sb e2bSandbox
			decodeJSON(t, b, &sb)
			s.e2bKill(key, sb.SandboxID)
		}
		status, _, b := s.e2bCall(t, "not-a-key", "POST", "/v2/sandboxes", `{}`, nil)
		wantE2BError(t, "create with a bad key", status, b, 401)
	})
	if v1.SandboxID == "" {
		t.Fatal("no sandbox to go on with")
	}

	info := func(t *testing.T, id string) e2bDetail {
		t.Helper()
		var d e2bDetail
		status, _, b := s.e2bCall(t, key, "GET", "/sandboxes/"+id, "", &d)
		if status != 200 {
			t.Fatalf("GET /sandboxes/%s: %d %s", id, status, b)
		}
		return d
	}
	endsIn := func(d e2bDetail) time.Duration { return time.Until(d.EndAt).Round(time.Second) }

	t.Run("info and timeout", func(t *testing.T) {
		d := info(t, v1.SandboxID)
		if d.SandboxID != v1.SandboxID || d.State != "running" || d.TemplateID != "base" || d.EnvdAccessToken != v1.EnvdAccessToken ||
			d.CPUCount < 1 || d.MemoryMB <= 0 || d.EnvdVersion != "0.6.13" || d.Metadata["made"] == "" || time.Since(d.StartedAt) > time.Minute {
			t.Errorf("info = %+v", d)
		}
		if in := endsIn(d); in < 100*time.Second || in > 120*time.Second {
			t.Errorf("created with timeout 120: ends in %v", in)
		}
		status, _, b := s.e2bCall(t, key, "POST", "/sandboxes/"+v1.SandboxID+"/timeout", `{"timeout":600}`, nil)
		if status != 204 {
			t.Fatalf("timeout: %d %s", status, b)
		}
		if in := endsIn(info(t, v1.SandboxID)); in < 590*time.Second || in > 600*time.Second {
			t.Errorf("after setTimeout(600 s) it ends in %v", in)
		}
		for _, body := range []string{`{}`, `{"timeout":-1}`, `{"timeout":"x"}`} {
			status, _, b := s.e2bCall(t, key, "POST", "/sandboxes/"+v1.SandboxID+"/timeout", body, nil)
			wantE2BError(t, "timeout "+body, status, b, 400)
		}
		if in := endsIn(info(t, v1.SandboxID)); in < 580*time.Second {
			t.Errorf("refused timeouts moved the end: it ends in %v", in)
		}
	})

	t.Run("timeout within the tier TTL", func(t *testing.T) {
		free := s.account(t, api.TierFree)
		sb := s.e2bCreate(t, free, `{"timeout":3600}`)
		var d e2bDetail
		s.e2bCall(t, free, "GET", "/sandboxes/"+sb.SandboxID, "", &d)
		if most := d.StartedAt.Add(10 * time.Minute); d.EndAt.After(most.Add(time.Second)) || d.EndAt.Before(most.Add(-5*time.Second)) {
			t.Errorf("free tier (ttl 10m), timeout 3600: started %v, ends %v, want its TTL", d.StartedAt, d.EndAt)
		}
		if status, _, b := s.e2bCall(t, free, "POST", "/sandboxes/"+sb.SandboxID+"/timeout", `{"timeout":86400}`, nil); status != 204 {
			t.Fatalf("timeout: %d %s", status, b)
		}
		s.e2bCall(t, free, "GET", "/sandboxes/"+sb.SandboxID, "", &d)
		if most := d.StartedAt.Add(10 * time.Minute); d.EndAt.After(most.Add(time.Second)) {
			t.Errorf("setTimeout(1 day) on the free tier: ends %v, after its TTL %v", d.EndAt, most)
		}
		if _, _, b := s.e2bCall(t, free, "POST", "/sandboxes/"+sb.SandboxID+"/connect", `{"timeout":86400}`, &d); d.EndAt.IsZero() {
			t.Logf("connect: %s", b)
		}
		s.e2bCall(t, free, "GET", "/sandboxes/"+sb.SandboxID, "", &d)
		if most := d.StartedAt.Add(10 * time.Minute); d.EndAt.After(most.Add(time.Second)) {
			t.Errorf("connect with timeout 1 day on the free tier: ends %v, after its TTL %v", d.EndAt, most)
		}

		// 429 with an integer Retry-After where the tier limits: the
		// free tier's max_sandboxes is 2.
		s.e2bCreate(t, free, `{}`)
		status, hdr, b := s.e2bCall(t, free, "POST", "/v2/sandboxes", `{}`, nil)
		wantE2BError(t, "a third sandbox on the free tier", status, b, 429)
		if ra := hdr.Get("Retry-After"); !regexp.MustCompile(`^[0-9]+$`).MatchString(ra) {
			t.Errorf("429 Retry-After = %q, want whole seconds", ra)
		}
	})

	t.Run("connect", func(t *testing.T) {
		for _, tc := range []struct {
			path   string
			status int
		}{{"/sandboxes/%s/connect", 200}, {"/v2/sandboxes/%s/connect", 200}, {"/sandboxes/%s/resume", 201}} {
			var sb e2bSandbox
			status, _, b := s.e2bCall(t, key, "POST", fmt.Sprintf(tc.path, v1.SandboxID), `{"timeout":300}`, &sb)
			if status != tc.status || sb.SandboxID != v1.SandboxID || sb.EnvdAccessToken != v1.EnvdAccessToken || sb.EnvdVersion != "0.6.13" {
				t.Errorf("POST %s: %d %s", tc.path, status, b)
			}
			if in := endsIn(info(t, v1.SandboxID)); in < 290*time.Second || in > 300*time.Second {
				t.Errorf("after %s with timeout 300 it ends in %v", tc.path, in)
			}
		}
	})

	t.Run("list", func(t *testing.T) {
		run := fmt.Sprint(time.Now().UnixNano())
		var made []string
		for i := range 3 {
			sb := s.e2bCreate(t, key, fmt.Sprintf(`{"metadata":{"run":%q,"i":"%d"}}`, run, i))
			made = append(made, sb.SandboxID)
		}
		own := s.sandbox(t, key) // a session of Chaser's own API
		list := func(t *testing.T, query string) ([]e2bDetail, string) {
			t.Helper()
			var l []e2bDetail
			status, hdr, b := s.e2bCall(t, key, "GET", "/v2/sandboxes?"+query, "", &l)
			if status != 200 {
				t.Fatalf("list ?%s: %d %s", query, status, b)
			}
			return l, hdr.Get("X-Next-Token")
		}
		ids := func(l []e2bDetail) []string {
			var out []string
			for _, d := range l {
				out = append(out, d.SandboxID)
			}
			return out
		}
		// The SDK sends metadata as one query value "k=v&k2=v2", its parts
		// URI-encoded.
		md := "metadata=" + url.QueryEscape("run="+url.QueryEscape(run))
		newest := slices.Clone(made)
		slices.Reverse(newest)
		for _, tc := range []struct {
			order string
			want  []string
		}{{"", newest}, {"&order=desc", newest}, {"&order=asc", made}} {
			var paged []string
			next := ""
			for range 5 {
				q := md + tc.order + "&limit=1"
				if next != "" {
					q += "&nextToken=" + url.QueryEscape(next)
				}
				l, tok := list(t, q)
				paged = append(paged, ids(l)...)
				if next = tok; next == "" {
					break
				}
			}
			if !slices.Equal(paged, tc.want) {
				t.Errorf("paged by one with the metadata filter, order %q: %v, want %v (E2B's default: newest first)", tc.order, paged, tc.want)
			}
		}
		if l, tok := list(t, md+"&order=asc&limit=3"); !slices.Equal(ids(l), made) || tok != "" {
			t.Errorf("one page of 3: %v, next %q", ids(l), tok)
		}
		var d0 e2bDetail
		s.e2bCall(t, key, "GET", "/sandboxes/"+made[1], "", &d0)
		if l, _ := list(t, md+"&order=asc&startedAfter="+url.QueryEscape(d0.StartedAt.Format(time.RFC3339Nano))); !slices.Equal(ids(l), made[1:]) {
			t.Errorf("startedAfter the second one's start: %v, want %v", ids(l), made[1:])
		}
		if l, _ := list(t, md+"&template=base"); len(l) != 3 {
			t.Errorf("template=base: %v", ids(l))
		}
		if l, _ := list(t, md+"&template=python%3A3.12"); len(l) != 0 {
			t.Errorf("template=python:3.12: %v, want none", ids(l))
		}
		two := "metadata=" + url.QueryEscape("run="+run+"&i=2")
		if l, _ := list(t, two); !slices.Equal(ids(l), made[2:3]) {
			t.Errorf("two metadata keys: %v, want %v", ids(l), made[2:3])
		}
		// A page's token holds when the sandbox it ended on is killed.
		l, tok := list(t, md+"&order=asc&limit=1")
		if tok == "" || !slices.Equal(ids(l), made[:1]) {
			t.Fatalf("first page: %v, token %q", ids(l), tok)
		}
		s.e2bKill(key, made[0])
		if l, _ := list(t, md+"&order=asc&limit=5&nextToken="+url.QueryEscape(tok)); !slices.Equal(ids(l), made[1:]) {
			t.Errorf("the next page after its token's sandbox was killed: %v, want %v", ids(l), made[1:])
		}
		made = made[1:]
		if l, _ := list(t, md+"&state=running"); len(l) != 2 {
			t.Errorf("state=running: %v", ids(l))
		}
		if l, _ := list(t, md+"&state=paused"); len(l) != 0 {
			t.Errorf("state=paused: %v, want none (Chaser cannot pause)", ids(l))
		}
		if l, _ := list(t, md+"&state=running,paused"); len(l) != 2 {
			t.Errorf("state=running,paused: %v", ids(l))
		}
		for _, q := range []string{"state=sleeping", "limit=0", "limit=101", "nextToken=%25%25", "nextToken=" + url.QueryEscape(made[0]), "order=up", "startedAfter=yesterday"} {
			status, _, b := s.e2bCall(t, key, "GET", "/v2/sandboxes?"+q, "", nil)
			wantE2BError(t, "list ?"+q, status, b, 400)
		}
		// Chaser's own sessions are listed (E2B lists all of the team's
		// running sandboxes), with fields the SDK takes.
		all, _ := list(t, "")
		var mine *e2bDetail
		for i := range all {
			if all[i].SandboxID == own {
				mine = &all[i]
			}
		}
		if mine == nil {
			t.Fatalf("the Chaser session %s is not listed: %v", own, ids(all))
		}
		if mine.TemplateID == "" || mine.ClientID == "" || mine.State != "running" || mine.CPUCount < 1 || mine.MemoryMB <= 0 ||
			mine.EnvdVersion != "0.6.13" || mine.Metadata == nil || !mine.EndAt.After(mine.StartedAt) || time.Since(mine.StartedAt) > time.Minute {
			t.Errorf("the Chaser session listed as %+v", *mine)
		}
		// It can be connected and driven through envd, as a sandbox of
		// the team.
		var sb e2bSandbox
		if status, _, b := s.e2bCall(t, key, "POST", "/v2/sandboxes/"+own+"/connect", `{}`, &sb); status != 200 {
			t.Fatalf("connect to the Chaser session: %d %s", status, b)
		}
		if out := s.envd(own, sb.EnvdAccessToken, "").mustRun(t, "echo own"); out != "own\n" {
			t.Errorf("a command in the Chaser session through envd: %q", out)
		}
		var v1list []e2bDetail
		if status, _, b := s.e2bCall(t, key, "GET", "/sandboxes?order=asc&"+md, "", &v1list); status != 200 || !slices.Equal(ids(v1list), made) {
			t.Errorf("v1 GET /sandboxes: %d %s", status, b)
		}
	})

	t.Run("metrics and pause", func(t *testing.T) {
		// CPU use is the sandbox's, not the host's (2 cores shared with
		// other tests here): near 0 while it idles, and a busy loop in it
		// shows.
		cpu := func() float64 {
			var m []struct {
				CPUUsedPct float64 `json:"cpuUsedPct"`
				CPUCount   int     `json:"cpuCount"`
			}
			if status, _, b := s.e2bCall(t, key, "GET", "/sandboxes/"+v1.SandboxID+"/metrics", "", &m); status != 200 || len(m) != 1 || m[0].CPUCount < 1 {
				t.Fatalf("metrics: %d %s", status, b)
			}
			return m[0].CPUUsedPct
		}
		idle := cpu()
		if idle > 10 {
			t.Errorf("an idle sandbox uses %.1f%% CPU: the host's figure?", idle)
		}
		e := s.envd(v1.SandboxID, v1.EnvdAccessToken, "")
		e.mustRun(t, "(setsid timeout 3 sh -c 'while :; do :; done' >/dev/null 2>&1 &)")
		time.Sleep(300 * time.Millisecond)
		// The loop gets what the loaded host gives it: some, not all.
		if busy := cpu(); busy < 5 || busy <= idle {
			t.Errorf("a sandbox running a busy loop uses %.1f%% CPU", busy)
		}
		// The SDK's pause raises a SandboxError with the message on any
		// status but 404 (not found) and 409 (already paused: false).
		status, _, b := s.e2bCall(t, key, "POST", "/sandboxes/"+v1.SandboxID+"/pause", `{}`, nil)
		wantE2BError(t, "pause", status, b, 501)
		if d := info(t, v1.SandboxID); d.State != "running" {
			t.Errorf("after a refused pause: %+v", d)
		}
	})

	t.Run("envd access token", func(t *testing.T) {
		ctx := t.Context()
		if out := s.envd(v1.SandboxID, v1.EnvdAccessToken, "").mustRun(t, "echo ok"); out != "ok\n" {
			t.Fatalf("with the token: %q", out)
		}
		for _, tc := range []struct{ what, token, want string }{
			{"no token", "", "unauthenticated"},
			{"the API key as the token", key, "not_found"},
			{"another sandbox's token", v2.EnvdAccessToken, "not_found"},
			{"a made-up token", strings.Repeat("0", 64), "not_found"},
		} {
			if _, _, err := s.envd(v1.SandboxID, tc.token, "").run(ctx, "echo no"); connectCode(err) != tc.want {
				t.Errorf("process.Start with %s: %v, want %s", tc.what, err, tc.want)
			}
		}
		for _, tc := range []struct {
			token string
			want  int
		}{{"", 401}, {key, 404}, {v1.EnvdAccessToken, 200}} {
			req, _ := http.NewRequestWithContext(ctx, "GET", s.URL+"/files?path=/etc/hostname", nil)
			req.Header.Set("E2b-Sandbox-Id", v1.SandboxID)
			if tc.token != "" {
				req.Header.Set("X-Access-Token", tc.token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if tc.want == 200 && resp.StatusCode != 200 {
				t.Errorf("GET /files with the token: %d %s", resp.StatusCode, b)
			} else if tc.want != 200 {
				wantE2BError(t, "GET /files with token "+tc.token, resp.StatusCode, b, tc.want)
			}
		}
	})

	t.Run("users", func(t *testing.T) {
		ctx := t.Context()
		if out := s.envd(v1.SandboxID, v1.EnvdAccessToken, "root").mustRun(t, "id -u"); out != "0\n" {
			t.Errorf("user root: id -u = %q", out)
		}
		if out := s.envd(v1.SandboxID, v1.EnvdAccessToken, "nobody").mustRun(t, "id -un"); out != "nobody\n" {
			t.Errorf("user nobody: id -un = %q", out)
		}
		if _, _, err := s.envd(v1.SandboxID, v1.EnvdAccessToken, "nosuchuser").run(ctx, "id -u"); connectCode(err) != "invalid_argument" {
			t.Errorf("an unknown user: %v, want invalid_argument", err)
		}
		if _, err := s.envd(v1.SandboxID, v1.EnvdAccessToken, "nosuchuser").fs.Stat(ctx, connect.NewRequest(&filesystem.StatRequest{Path: "/etc"})); connectCode(err) != "invalid_argument" {
			t.Errorf("Stat as an unknown user: %v, want invalid_argument", err)
		}
		if _, err := s.envd(v1.SandboxID, v1.EnvdAccessToken, "nobody").fs.Stat(ctx, connect.NewRequest(&filesystem.StatRequest{Path: "/etc"})); err != nil {
			t.Errorf("Stat as nobody: %v", err)
		}
		req, _ := http.NewRequestWithContext(ctx, "GET", s.URL+"/files?path=/etc/hostname&username=nosuchuser", nil)
		req.Header.Set("E2b-Sandbox-Id", v1.SandboxID)
		req.Header.Set("X-Access-Token", v1.EnvdAccessToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		wantE2BError(t, "GET /files as an unknown user", resp.StatusCode, b, 400)
	})

	t.Run("templates", func(t *testing.T) {
		// An image reference: "host", the built-in default image.
		img := s.e2bCreate(t, key, `{"templateID":"host"}`)
		if sess, err := s.Client(key).GetSession(t.Context(), img.SandboxID); err != nil || sess.Image != "host" || img.TemplateID != "host" {
			t.Errorf("templateID host: %+v, %v; answer %+v", sess, err, img)
		}
		// workspace:NAME: a session on the account's workspace, whose
		// files outlive the sandbox.
		if _, err := s.Client(key).CreateWorkspace(t.Context(), api.CreateWorkspaceRequest{Name: "e2bws"}); err != nil {
			t.Fatal(err)
		}
		ws := s.e2bCreate(t, key, `{"templateID":"workspace:e2bws"}`)
		s.envd(ws.SandboxID, ws.EnvdAccessToken, "").mustRun(t, "echo kept > /workspace/k")
		status, _, b := s.e2bCall(t, key, "POST", "/v2/sandboxes", `{"templateID":"workspace:e2bws"}`, nil)
		wantE2BError(t, "a second sandbox on a busy workspace", status, b, 409)
		s.e2bKill(key, ws.SandboxID)
		ws2 := s.e2bCreate(t, key, `{"templateID":"workspace:e2bws"}`)
		if out := s.envd(ws2.SandboxID, ws2.EnvdAccessToken, "").mustRun(t, "cat /workspace/k"); out != "kept\n" || ws2.TemplateID != "workspace:e2bws" {
			t.Errorf("the workspace's file in its next sandbox: %q (template %s)", out, ws2.TemplateID)
		}
		status, _, b = s.e2bCall(t, key, "POST", "/v2/sandboxes", `{"templateID":"workspace:nosuch"}`, nil)
		wantE2BError(t, "an unknown workspace", status, b, 404)
	})

	t.Run("stdin, listings and uploads", func(t *testing.T) {
		ctx := t.Context()
		e := s.envd(v1.SandboxID, v1.EnvdAccessToken, "")
		// commands.run with stdin, sendStdin, closeStdin: cat ends at EOF.
		stdin := true
		st, err := e.proc.Start(ctx, connect.NewRequest(&process.StartRequest{Process: &process.ProcessConfig{Cmd: "/bin/bash", Args: []string{"-l", "-c", "cat; echo done"}}, Stdin: &stdin}))
		if err != nil {
			t.Fatal(err)
		}
		if !st.Receive() || st.Msg().GetEvent().GetStart() == nil {
			t.Fatalf("no start: %v", st.Err())
		}
		sel := &process.ProcessSelector{Selector: &process.ProcessSelector_Pid{Pid: st.Msg().GetEvent().GetStart().GetPid()}}
		if _, err := e.proc.SendInput(ctx, connect.NewRequest(&process.SendInputRequest{Process: sel, Input: &process.ProcessInput{Input: &process.ProcessInput_Stdin{Stdin: []byte("hello\n")}}})); err != nil {
			t.Fatal(err)
		}
		if _, err := e.proc.CloseStdin(ctx, connect.NewRequest(&process.CloseStdinRequest{Process: sel})); err != nil {
			t.Fatal(err)
		}
		var out strings.Builder
		var end *process.ProcessEvent_EndEvent
		for end == nil && st.Receive() {
			out.Write(st.Msg().GetEvent().GetData().GetStdout())
			end = st.Msg().GetEvent().GetEnd()
		}
		st.Close()
		if end == nil || end.GetExitCode() != 0 || out.String() != "hello\ndone\n" {
			t.Errorf("stdin then closeStdin: %q, end %v", out.String(), end)
		}

		// ListDir depth.
		e.mustRun(t, "mkdir -p /tmp/ls/a/b && touch /tmp/ls/top /tmp/ls/a/mid /tmp/ls/a/b/deep")
		for depth, want := range map[uint32][]string{1: {"a", "top"}, 2: {"a", "a/b", "a/mid", "top"}, 3: {"a", "a/b", "a/b/deep", "a/mid", "top"}} {
			r, err := e.fs.ListDir(ctx, connect.NewRequest(&filesystem.ListDirRequest{Path: "/tmp/ls", Depth: depth}))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, en := range r.Msg.GetEntries() {
				got = append(got, strings.TrimPrefix(en.GetPath(), "/tmp/ls/"))
			}
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("ListDir depth %d: %v, want %v", depth, got, want)
			}
		}

		// POST /files as octet-stream (envd ≥ 0.5.7), as a user.
		req, _ := http.NewRequestWithContext(ctx, "POST", s.URL+"/files?path=/tmp/up/raw.bin&username=nobody", strings.NewReader("raw bytes"))
		req.Header.Set("E2b-Sandbox-Id", v1.SandboxID)
		req.Header.Set("X-Access-Token", v1.EnvdAccessToken)
		req.Header.Set("Content-Type", "application/octet-stream")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), `"path":"/tmp/up/raw.bin"`) {
			t.Errorf("octet-stream upload: %d %s", resp.StatusCode, b)
		}
		if out := e.mustRun(t, "cat /tmp/up/raw.bin; echo; stat -c %U /tmp/up/raw.bin"); out != "raw bytes\nnobody\n" {
			t.Errorf("the uploaded file: %q", out)
		}
	})

	t.Run("keepalives", func(t *testing.T) {
		e := s.envd(v1.SandboxID, v1.EnvdAccessToken, "")
		req := connect.NewRequest(&process.StartRequest{Process: &process.ProcessConfig{Cmd: "/bin/bash", Args: []string{"-l", "-c", "sleep 3.5; echo done"}}})
		req.Header().Set("Keepalive-Ping-Interval", "1")
		st, err := e.proc.Start(t.Context(), req)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		var kinds []string
		for st.Receive() {
			ev := st.Msg().GetEvent()
			switch {
			case ev.GetStart() != nil:
				kinds = append(kinds, "start")
			case ev.GetKeepalive() != nil:
				kinds = append(kinds, "keepalive")
			case ev.GetData() != nil:
				kinds = append(kinds, "data")
			case ev.GetEnd() != nil:
				kinds = append(kinds, "end")
			}
		}
		n := 0
		for _, k := range kinds {
			if k == "keepalive" {
				n++
			}
		}
		if len(kinds) < 2 || kinds[0] != "start" || kinds[len(kinds)-1] != "end" || n < 2 || n > 5 {
			t.Errorf("a 3.5 s command with Keepalive-Ping-Interval 1: events %v, want start, 2 to 5 keepalives, end", kinds)
		}
	})

	t.Run("traffic access token", func(t *testing.T) {
		ctx := t.Context()
		priv := s.e2bCreate(t, key, `{"network":{"allowPublicTraffic":false}}`)
		if priv.TrafficAccessToken == nil || *priv.TrafficAccessToken == "" || *priv.TrafficAccessToken == priv.EnvdAccessToken {
			t.Fatalf("a private sandbox's create answer: %+v", priv)
		}
		for _, sb := range []e2bSandbox{priv, v1} {
			s.envd(sb.SandboxID, sb.EnvdAccessToken, "").mustRun(t, "mkdir -p /tmp/srv && echo served > /tmp/srv/x && cd /tmp/srv && (setsid python3 -m http.server 8000 --bind 127.0.0.1 >/dev/null 2>&1 &)")
		}
		get := func(id, token string) (int, string) {
			var status int
			var body string
			for range 100 {
				req, _ := http.NewRequestWithContext(ctx, "GET", s.URL+"/x", nil)
				req.Host = fmt.Sprintf("8000-%s.%s:%s", id, testDom, u.Port())
				if token != "" {
					req.Header.Set("e2b-traffic-access-token", token)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				status, body = resp.StatusCode, string(b)
				if status != 502 && status != 503 { // the server is still starting
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			return status, body
		}
		if status, body := get(priv.SandboxID, *priv.TrafficAccessToken); status != 200 || body != "served\n" {
			t.Errorf("private port with its traffic token: %d %q", status, body)
		}
		for _, tc := range []struct{ what, token string }{{"no token", ""}, {"the envd token", priv.EnvdAccessToken}, {"the API key", key}} {
			if status, body := get(priv.SandboxID, tc.token); status != 403 {
				t.Errorf("private port with %s: %d %q, want 403", tc.what, status, body)
			}
		}
		if status, body := get(v1.SandboxID, ""); status != 200 || body != "served\n" {
			t.Errorf("public port without a token: %d %q", status, body)
		}
	})

	t.Run("another account", func(t *testing.T) {
		other := s.account(t, api.TierPaid)
		osb := s.e2bCreate(t, other, `{}`)
		for _, c := range []struct{ method, path, body string }{
			{"GET", "/sandboxes/%s", ""},
			{"DELETE", "/sandboxes/%s", ""},
			{"POST", "/sandboxes/%s/timeout", `{"timeout":60}`},
			{"POST", "/sandboxes/%s/connect", `{}`},
			{"POST", "/v2/sandboxes/%s/connect", `{}`},
			{"POST", "/sandboxes/%s/resume", `{}`},
			{"GET", "/sandboxes/%s/metrics", ""},
			{"POST", "/sandboxes/%s/pause", `{}`},
			{"POST", "/sandboxes/%s/refreshes", `{}`},
		} {
			status, _, b := s.e2bCall(t, key, c.method, fmt.Sprintf(c.path, osb.SandboxID), c.body, nil)
			wantE2BError(t, c.method+" "+c.path+" of another account's sandbox", status, b, 404)
		}
		var l []e2bDetail
		s.e2bCall(t, key, "GET", "/v2/sandboxes", "", &l)
		for _, d := range l {
			if d.SandboxID == osb.SandboxID {
				t.Errorf("another account's sandbox is listed")
			}
		}
		// envd: its id with this account's token.
		if _, _, err := s.envd(osb.SandboxID, v1.EnvdAccessToken, "").run(t.Context(), "true"); connectCode(err) != "not_found" {
			t.Errorf("process.Start in another account's sandbox: %v, want not_found", err)
		}
		var d e2bDetail
		if status, _, b := s.e2bCall(t, other, "GET", "/sandboxes/"+osb.SandboxID, "", &d); status != 200 || d.State != "running" {
			t.Errorf("the other account's sandbox after the calls: %d %s", status, b)
		}
	})

	t.Run("kill", func(t *testing.T) {
		if status, _, b := s.e2bCall(t, key, "DELETE", "/sandboxes/"+v2.SandboxID, "", nil); status != 204 || len(b) != 0 {
			t.Fatalf("kill: %d %s", status, b)
		}
		for _, c := range []struct{ method, path string }{
			{"DELETE", "/sandboxes/%s"}, {"GET", "/sandboxes/%s"}, {"POST", "/v2/sandboxes/%s/connect"}, {"POST", "/sandboxes/%s/timeout"},
		} {
			status, _, b := s.e2bCall(t, key, c.method, fmt.Sprintf(c.path, v2.SandboxID), `{"timeout":10}`, nil)
			wantE2BError(t, c.method+" "+c.path+" after kill", status, b, 404)
		}
		status, _, b := s.e2bCall(t, key, "DELETE", "/sandboxes/s-doesnotexist", "", nil)
		wantE2BError(t, "kill of an unknown sandbox", status, b, 404)
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		if _, _, err := s.envd(v2.SandboxID, v2.EnvdAccessToken, "").run(ctx, "true"); connectCode(err) != "unavailable" {
			t.Errorf("envd of a killed sandbox: %v, want unavailable (the SDK's sandbox timeout)", err)
		}
	})
}
