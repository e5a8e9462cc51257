package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/chaserhq/chaser/api"
)

type rpcAnswer struct {
	Result *struct {
		IsError           bool                    `json:"isError"`
		Content           []struct{ Text string } `json:"content"`
		StructuredContent struct {
			SessionID   string  `json:"session_id"`
			WorkspaceID *string `json:"workspace_id"`
			ExitCode    *int    `json:"exit_code"`
			Stdout      string  `json:"stdout"`
		} `json:"structuredContent"`
	} `json:"result"`
	Error *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// callTerminal sends a bare tools/call like the seed page's curl.
func callTerminal(t *testing.T, s *Server, key string, args map[string]any) (int, rpcAnswer) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": "tools/call",
		"params": map[string]any{"name": "terminal", "arguments": args}})
	code, raw := s.do(t, key, "POST", "/v1/mcp", string(body))
	var a rpcAnswer
	if code == 200 {
		decodeJSON(t, raw, &a)
	}
	return code, a
}

func text(a rpcAnswer) string {
	if a.Result == nil || len(a.Result.Content) == 0 {
		return ""
	}
	return a.Result.Content[0].Text
}

// TestMCPSeed runs the seed page's curl verbatim.
func TestMCPSeed(t *testing.T) {
	s := sharedServer(t)
	key := s.account(t, "paid")
	if _, err := s.Client(key).CreateWorkspace(t.Context(), api.CreateWorkspaceRequest{Name: "dev"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Client(key).DeleteWorkspace(t.Context(), "dev", true) })
	out, err := exec.Command("curl", "-sS", s.URL+"/v1/mcp",
		"-H", "Authorization: Bearer "+key,
		"-H", "Content-Type: application/json",
		"-d", `{
 "jsonrpc": "2.0", "id": 1,
 "method": "tools/call",
 "params": {
 "name": "terminal",
 "arguments": {"workspace": "dev", "command": "git status"}
 }
 }`).Output()
	if err != nil {
		t.Fatalf("curl: %v", err)
	}
	var a rpcAnswer
	decodeJSON(t, out, &a)
	ws, _ := s.Client(key).GetWorkspace(t.Context(), "dev")
	sc := a.Result.StructuredContent
	if a.Result == nil || sc.SessionID == "" || sc.WorkspaceID == nil || *sc.WorkspaceID != ws.ID || sc.ExitCode == nil {
		t.Fatalf("answer: %s", out)
	}
	// git status outside a repository fails; the exit code says so.
	if *sc.ExitCode != 128 || !strings.Contains(text(a), "[exit code: 128]") ||
		!strings.Contains(text(a), "session_id: "+sc.SessionID) || !strings.Contains(text(a), "workspace_id: "+ws.ID) {
		t.Fatalf("text: %q", text(a))
	}
	// A follow-up call targets the same runtime by session_id.
	_, a2 := callTerminal(t, s, key, map[string]any{"session_id": sc.SessionID, "cmd": "echo $CHASER_SESSION_ID"})
	if a2.Result == nil || a2.Result.StructuredContent.Stdout != sc.SessionID+"\n" {
		t.Fatalf("follow-up: %+v", a2)
	}
}

// TestMCPClient uses the official SDK client: initialize, session id,
// tools/list, and the xml file operations.
func TestMCPClient(t *testing.T) {
	s := sharedServer(t)
	key := s.account(t, "free")

	// A raw initialize gets an Mcp-Session-Id.
	req, _ := http.NewRequest("POST", s.URL+"/v1/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Mcp-Session-Id") == "" {
		t.Fatalf("initialize: %d, session id %q", resp.StatusCode, resp.Header.Get("Mcp-Session-Id"))
	}

	cs := connectMCP(t, s, key)
	tools, err := cs.ListTools(t.Context(), nil)
	if err != nil || len(tools.Tools) != 1 || tools.Tools[0].Name != "terminal" {
		t.Fatalf("tools/list: %+v %v", tools, err)
	}
	schema, _ := json.Marshal(tools.Tools[0].InputSchema)
	for _, prop := range []string{"command", "cmd", "xml", "workspace", "session_id", "cwd", "timeout_ms"} {
		if !strings.Contains(string(schema), `"`+prop+`":{`) {
			t.Errorf("input schema lacks %s: %s", prop, schema)
		}
	}
	if !strings.Contains(string(schema), "description") {
		t.Errorf("input schema has no descriptions: %s", schema)
	}

	call := func(args map[string]any) (*sdk.CallToolResult, string) {
		t.Helper()
		res, err := cs.CallTool(t.Context(), &sdk.CallToolParams{Name: "terminal", Arguments: args})
		if err != nil {
			t.Fatalf("call %v: %v", args, err)
		}
		return res, res.Content[0].(*sdk.TextContent).Text
	}
	// Targetless calls of a free account share one ephemeral sandbox.
	_, t1 := call(map[string]any{"command": "echo $CHASER_SESSION_ID > /tmp/id; cat /tmp/id"})
	_, t2 := call(map[string]any{"command": "cat /tmp/id"})
	first := strings.SplitN(t1, "\n", 2)[0]
	if !strings.HasPrefix(first, "s-") || !strings.HasPrefix(t2, first+"\n") || !strings.Contains(t2, "workspace_id: none") {
		t.Fatalf("targetless calls: %q then %q", t1, t2)
	}

	// xml operations, in order, content taken literally.
	res, out := call(map[string]any{"xml": `<write_file path="/workspace/app/main.py">print("a &amp; b")
x = 1 &lt; 2
</write_file>
<write_file path="/workspace/app/page.html"><![CDATA[<p class="x">&amp;</p>]]></write_file>
<apply_edit path="/workspace/app/main.py"><search>x = 1</search><replace>y = 3</replace></apply_edit>
<read_file path="/workspace/app/main.py" start_line="2" end_line="2"/>
<list_files path="/workspace" recursive="true"/>`})
	if res.IsError || !strings.Contains(out, "--- /workspace/app/main.py ---\ny = 3 < 2\n") ||
		!strings.Contains(out, "/workspace/app/page.html") || !strings.Contains(out, "/workspace/app/\t") {
		t.Fatalf("xml ops: %v %q", res.IsError, out)
	}
	_, out = call(map[string]any{"command": "cat /workspace/app/main.py /workspace/app/page.html"})
	if !strings.HasPrefix(out, "print(\"a & b\")\ny = 3 < 2\n<p class=\"x\">&amp;</p>") {
		t.Fatalf("files as written: %q", out)
	}

	// Tool errors name the failing operation and change nothing after it.
	for args, want := range map[string]string{
		`<apply_edit path="/workspace/app/main.py"><search>nope</search><replace>x</replace></apply_edit>`:                                                                                                                                       "apply_edit /workspace/app/main.py failed: edit 1: search text not found",
		`<write_file path="/workspace/app/x">1</write_file><apply_edit path="/workspace/app/x"><search>1</search><replace>2</replace></apply_edit><apply_edit path="/workspace/app/main.py"><search>"</search><replace>'</replace></apply_edit>`: "operations 1-2 succeeded",
		`<read_file path="/workspace/none"/>`:       "read_file /workspace/none failed",
		`<read_file path="/workspace/app/main.py">`: "malformed xml",
		`<read_file path="relative"/>`:              "read_file relative failed",
	} {
		res, out := call(map[string]any{"xml": args})
		if !res.IsError || !strings.Contains(out, want) {
			t.Errorf("xml %q: isError %v, %q; want %q", args, res.IsError, out, want)
		}
	}
	for args, want := range map[string]string{
		`{}`: "exactly one of command",
		`{"command":"true","xml":"<list_files path=\"/\"/>"}`: "exactly one of command",
		`{"command":"true","workspace":"nope"}`:               "paid",
		`{"command":"true","session_id":"s-nope"}`:            "not found",
	} {
		var m map[string]any
		json.Unmarshal([]byte(args), &m)
		res, out := call(m)
		if !res.IsError || !strings.Contains(out, want) {
			t.Errorf("args %s: isError %v, %q; want %q", args, res.IsError, out, want)
		}
	}
	if _, err := cs.CallTool(t.Context(), &sdk.CallToolParams{Name: "nosuchtool", Arguments: map[string]any{}}); err == nil {
		t.Error("unknown tool did not fail")
	}
}

func connectMCP(t *testing.T, s *Server, key string) *sdk.ClientSession {
	t.Helper()
	hc := &http.Client{Transport: bearerRT{key}}
	c := sdk.NewClient(&sdk.Implementation{Name: "test", Version: "1"}, nil)
	cs, err := c.Connect(t.Context(), &sdk.StreamableClientTransport{Endpoint: s.URL + "/v1/mcp", HTTPClient: hc}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

type bearerRT struct{ key string }

func (b bearerRT) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.key)
	return http.DefaultTransport.RoundTrip(r)
}

func TestMCPBadInput(t *testing.T) {
	s := sharedServer(t)
	key := s.account(t, "paid")
	code, body := s.do(t, "", "POST", "/v1/mcp", `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`)
	expectError(t, code, body, 401, "unauthenticated")
	code, body = s.do(t, key, "POST", "/v1/mcp", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"nope","arguments":{}}}`)
	if code != 200 || !strings.Contains(string(body), `"error"`) || !strings.Contains(string(body), "nope") {
		t.Fatalf("unknown tool: %d %s", code, body)
	}
	code, body = s.do(t, key, "POST", "/v1/mcp", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"terminal","arguments":{"command":"true","workspace":"missing"}}}`)
	if code != 200 || !strings.Contains(string(body), `"isError":true`) || !strings.Contains(string(body), `workspace \"missing\" not found`) {
		t.Fatalf("unknown workspace: %d %s", code, body)
	}
	if code, _ := s.do(t, key, "POST", "/v1/mcp", `{not json`); code < 400 || code >= 500 {
		t.Fatalf("malformed JSON-RPC: %d", code)
	}
	if list, _ := s.Client(key).ListWorkspaces(t.Context()); len(list) != 0 {
		t.Fatalf("bad calls made workspaces: %v", list)
	}
}

// TestMCPStdioBridge drives `chaser mcp` with the SDK's command transport.
func TestMCPStdioBridge(t *testing.T) {
	s := sharedServer(t)
	key := s.account(t, "free")
	cmd := exec.Command(binary, "mcp")
	cmd.Env = append(os.Environ(), "CHASER_API_URL="+s.URL, "CHASER_API_KEY="+key)
	c := sdk.NewClient(&sdk.Implementation{Name: "test", Version: "1"}, nil)
	cs, err := c.Connect(t.Context(), &sdk.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	tools, err := cs.ListTools(t.Context(), nil)
	if err != nil || len(tools.Tools) != 1 || tools.Tools[0].Name != "terminal" {
		t.Fatalf("tools: %+v %v", tools, err)
	}
	res, err := cs.CallTool(t.Context(), &sdk.CallToolParams{Name: "terminal", Arguments: map[string]any{"command": "echo bridged; exit 4"}})
	if err != nil {
		t.Fatal(err)
	}
	out := res.Content[0].(*sdk.TextContent).Text
	if res.IsError || !strings.HasPrefix(out, "bridged\n[exit code: 4]") {
		t.Fatalf("bridged call: %q", out)
	}
	// Without a key the bridge fails at once with a clear message.
	r := s.cli(t, "", strings.NewReader(""), "mcp")
	if r.Code == 0 || !strings.Contains(r.Stderr, "CHASER_API_KEY") {
		t.Fatalf("mcp without key: %d %q", r.Code, r.Stderr)
	}
}

// progressClient connects the SDK client over t and records the progress
// notifications it gets.
type progressLog struct {
	mu    sync.Mutex
	notes []*sdk.ProgressNotificationParams
}

func (p *progressLog) handler(_ context.Context, req *sdk.ProgressNotificationClientRequest) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.notes = append(p.notes, req.Params)
}

func (p *progressLog) list() []*sdk.ProgressNotificationParams {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*sdk.ProgressNotificationParams(nil), p.notes...)
}

// TestMCPProgress: a call with a progressToken gets notifications/progress
// while the command runs, each with the latest output line, so clients that
// reset their request timeout on progress keep waiting. Over HTTP and over
// the stdio bridge.
func TestMCPProgress(t *testing.T) {
	s := newServer(t, "--mcp-progress-interval", "400ms")
	key := s.account(t, "free")
	httpTransport := func() sdk.Transport {
		return &sdk.StreamableClientTransport{Endpoint: s.URL + "/v1/mcp", HTTPClient: &http.Client{Transport: bearerRT{key}}}
	}
	// The SDK's default protocol is sessionless; 2025-06-18 (the TypeScript
	// SDK's) opens a session.
	for name, tc := range map[string]struct {
		transport func() sdk.Transport
		protocol  string
	}{
		"http":         {httpTransport, ""},
		"http-session": {httpTransport, "2025-06-18"},
		"stdio": {func() sdk.Transport {
			cmd := exec.Command(binary, "mcp")
			cmd.Env = append(os.Environ(), "CHASER_API_URL="+s.URL, "CHASER_API_KEY="+key)
			return &sdk.CommandTransport{Command: cmd}
		}, ""},
	} {
		t.Run(name, func(t *testing.T) {
			var log progressLog
			c := sdk.NewClient(&sdk.Implementation{Name: "test", Version: "1"}, &sdk.ClientOptions{ProgressNotificationHandler: log.handler})
			cs, err := c.Connect(t.Context(), tc.transport(), &sdk.ClientSessionOptions{ProtocolVersion: tc.protocol})
			if err != nil {
				t.Fatal(err)
			}
			defer cs.Close()
			params := &sdk.CallToolParams{Name: "terminal", Arguments: map[string]any{
				"command": "for i in 1 2 3 4; do echo step$i; sleep 0.5; done"}}
			params.SetProgressToken("tok-" + name)
			res, err := cs.CallTool(t.Context(), params)
			if err != nil {
				t.Fatal(err)
			}
			if out := res.Content[0].(*sdk.TextContent).Text; res.IsError || !strings.HasPrefix(out, "step1\nstep2\nstep3\nstep4\n[exit code: 0]") {
				t.Fatalf("call: %q", out)
			}
			notes := log.list()
			if len(notes) < 2 {
				t.Fatalf("%d progress notifications over a 2 s command, want at least 2", len(notes))
			}
			stepped := false
			for i, n := range notes {
				if n.ProgressToken != "tok-"+name {
					t.Errorf("notification %d has token %v", i, n.ProgressToken)
				}
				if i > 0 && n.Progress <= notes[i-1].Progress {
					t.Errorf("progress does not increase: %v then %v", notes[i-1].Progress, n.Progress)
				}
				if strings.HasPrefix(n.Message, "step") {
					stepped = true
				}
			}
			if !stepped {
				t.Errorf("no notification carries an output line: %+v", notes)
			}
			// Without a token, no progress is sent.
			before := len(log.list())
			if _, err := cs.CallTool(t.Context(), &sdk.CallToolParams{Name: "terminal", Arguments: map[string]any{"command": "sleep 1"}}); err != nil {
				t.Fatal(err)
			}
			if n := len(log.list()); n != before {
				t.Errorf("%d progress notifications for a call without a token", n-before)
			}
		})
	}
}

// TestMCPStdioEOF pipes a whole conversation into `chaser mcp`: every
// request read before stdin closed is answered, then it exits 0.
func TestMCPStdioEOF(t *testing.T) {
	s := sharedServer(t)
	key := s.account(t, "free")
	init := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"sh","version":"1"}}}`
	initialized := `{"jsonrpc":"2.0","method":"notifications/initialized"}`
	call := `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"terminal","arguments":{"command":"sleep 1; echo piped"}}}`
	cmd := exec.CommandContext(t.Context(), "sh", "-c", `printf '%s\n' "$INIT" "$INITIALIZED" "$CALL" | "$CHASER" mcp`)
	cmd.Env = append(os.Environ(), "CHASER_API_URL="+s.URL, "CHASER_API_KEY="+key,
		"INIT="+init, "INITIALIZED="+initialized, "CALL="+call, "CHASER="+binary)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chaser mcp: %v\nstdout %s\nstderr %s", err, out, stderr.String())
	}
	var answers []rpcAnswer
	var ids []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var a struct {
			ID json.RawMessage `json:"id"`
			rpcAnswer
		}
		decodeJSON(t, []byte(line), &a)
		ids = append(ids, string(a.ID))
		answers = append(answers, a.rpcAnswer)
	}
	if len(answers) != 2 || ids[0] != "1" || ids[1] != "2" || !strings.HasPrefix(text(answers[1]), "piped\n[exit code: 0]") {
		t.Fatalf("answers %v: %s", ids, out)
	}
}

// TestMCPErrorsJSON: errors of the MCP transport answer with the API's
// JSON error shape, and a session id works only with its own account's key.
func TestMCPErrorsJSON(t *testing.T) {
	s := sharedServer(t)
	alice, bob := s.account(t, "free"), s.account(t, "free")
	code, body := s.do(t, alice, "GET", "/v1/mcp", "")
	expectError(t, code, body, 400, "invalid_argument")
	code, body = s.do(t, alice, "DELETE", "/v1/mcp", "")
	expectError(t, code, body, 400, "invalid_argument")

	req, _ := http.NewRequest("POST", s.URL+"/v1/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`))
	req.Header.Set("Authorization", "Bearer "+alice)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	sid := resp.Header.Get("Mcp-Session-Id")
	for _, id := range []string{sid, "no-such-session"} {
		for _, method := range []string{"POST", "GET", "DELETE"} {
			req, _ := http.NewRequest(method, s.URL+"/v1/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":2,"method":"tools/list"}`))
			req.Header.Set("Authorization", "Bearer "+bob)
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json, text/event-stream")
			req.Header.Set("Mcp-Session-Id", id)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.Header.Get("Content-Type") != "application/json" {
				t.Errorf("%s with session %q: Content-Type %q", method, id, resp.Header.Get("Content-Type"))
			}
			expectError(t, resp.StatusCode, b, 404, "not_found")
		}
	}
}

// redirectRT sends every request to the current server: a restarted
// server listens on another port.
type redirectRT struct {
	key    string
	target *atomic.Pointer[string]
}

func (r redirectRT) RoundTrip(req *http.Request) (*http.Response, error) {
	u, _ := url.Parse(*r.target.Load())
	req = req.Clone(req.Context())
	req.URL.Host, req.Host = u.Host, u.Host
	req.Header.Set("Authorization", "Bearer "+r.key)
	return http.DefaultTransport.RoundTrip(req)
}

// TestMCPSessionSurvivesRestart: a client keeps using its Mcp-Session-Id
// after the server restarted (same data dir); the id stays bound to its
// account.
func TestMCPSessionSurvivesRestart(t *testing.T) {
	s := newServer(t)
	key, other := s.account(t, "paid"), s.account(t, "paid")
	var target atomic.Pointer[string]
	target.Store(&s.URL)
	c := sdk.NewClient(&sdk.Implementation{Name: "test", Version: "1"}, nil)
	// 2025-06-18 (the TypeScript SDK's protocol) opens a session.
	cs, err := c.Connect(t.Context(), &sdk.StreamableClientTransport{Endpoint: s.URL + "/v1/mcp", HTTPClient: &http.Client{Transport: redirectRT{key, &target}}},
		&sdk.ClientSessionOptions{ProtocolVersion: "2025-06-18"})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	call := func(command string) string {
		t.Helper()
		res, err := cs.CallTool(t.Context(), &sdk.CallToolParams{Name: "terminal", Arguments: map[string]any{"command": command}})
		if err != nil {
			t.Fatalf("call %q: %v", command, err)
		}
		out := res.Content[0].(*sdk.TextContent).Text
		if res.IsError {
			t.Fatalf("call %q: %s", command, out)
		}
		return out
	}
	call("echo kept > /workspace/f")
	sid := cs.ID()
	if sid == "" {
		t.Fatal("no session id")
	}

	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	s2 := startServer(t, s.DataDir)
	defer s2.stop()
	target.Store(&s2.URL)

	if out := call("cat /workspace/f"); !strings.HasPrefix(out, "kept\n") {
		t.Fatalf("after restart: %q", out)
	}
	// Another account's key with that session id finds nothing.
	req, _ := http.NewRequest("POST", s2.URL+"/v1/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":9,"method":"tools/list"}`))
	req.Header.Set("Authorization", "Bearer "+other)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Session-Id", sid)
	req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	expectError(t, resp.StatusCode, b, 404, "not_found")
	// The session still works for its owner, and ends with DELETE.
	if out := call("echo again"); !strings.HasPrefix(out, "again\n") {
		t.Fatalf("second call after restart: %q", out)
	}
}

// TestTargetlessImage: image is taken wherever a throwaway sandbox is made
// (POST /v1/exec, chaser shell --image -c, the MCP terminal tool); a paid
// account's targetless request with an image runs in an ephemeral sandbox
// of it instead of its default workspace.
func TestTargetlessImage(t *testing.T) {
	f := newImageFixture(t)
	s := newServer(t, "--insecure-registry", f.reg.Host)
	key := s.account(t, "paid")
	cl := s.Client(key)

	body, _ := json.Marshal(map[string]any{"command": "echo $GREETING; pwd", "image": f.ref})
	code, raw := s.do(t, key, "POST", "/v1/exec", string(body))
	if code != 200 {
		t.Fatalf("exec with image: %d %s", code, raw)
	}
	var res api.ExecResult
	decodeJSON(t, raw, &res)
	if res.Stdout != "hello from the image\n/srv/app\n" || res.WorkspaceID != nil {
		t.Fatalf("exec with image: %s", raw)
	}
	if _, err := cl.GetSession(t.Context(), res.SessionID); err == nil {
		t.Errorf("the throwaway sandbox %s of /v1/exec is still there", res.SessionID)
	}
	body, _ = json.Marshal(map[string]any{"command": "true", "image": f.ref, "workspace": "dev"})
	code, raw = s.do(t, key, "POST", "/v1/exec", string(body))
	expectError(t, code, raw, 400, "invalid_argument")
	body, _ = json.Marshal(map[string]any{"command": "true", "image": f.reg.Host + "/test/nosuch:v1"})
	code, raw = s.do(t, key, "POST", "/v1/exec", string(body))
	expectError(t, code, raw, 404, "not_found")

	r := s.cli(t, key, nil, "shell", "--image", f.ref, "-c", "echo $GREETING; exit 3")
	if r.Code != 3 || r.Stdout != "hello from the image\n" {
		t.Fatalf("shell --image: %d %q %q", r.Code, r.Stdout, r.Stderr)
	}
	if r := s.cli(t, key, nil, "shell", "s-x", "--image", f.ref, "-c", "true"); r.Code == 0 || !strings.Contains(r.Stderr, "image") {
		t.Fatalf("shell SESSION --image: %d %q", r.Code, r.Stderr)
	}

	_, a := callTerminal(t, s, key, map[string]any{"command": "echo $GREETING > /tmp/g; cat /tmp/g", "image": f.ref})
	if a.Result == nil || a.Result.IsError || a.Result.StructuredContent.Stdout != "hello from the image\n" || a.Result.StructuredContent.WorkspaceID != nil {
		t.Fatalf("terminal with image: %+v", a)
	}
	first := a.Result.StructuredContent.SessionID
	// Later calls with the same image share the sandbox.
	_, a = callTerminal(t, s, key, map[string]any{"command": "cat /tmp/g", "image": f.ref})
	if a.Result == nil || a.Result.StructuredContent.SessionID != first || a.Result.StructuredContent.Stdout != "hello from the image\n" {
		t.Fatalf("second terminal call with image: %+v", a)
	}
	_, a = callTerminal(t, s, key, map[string]any{"command": "true", "image": f.ref, "workspace": "dev"})
	if a.Result == nil || !a.Result.IsError || !strings.Contains(text(a), "image") {
		t.Fatalf("terminal with image and workspace: %+v", a)
	}
	if list, _ := cl.ListWorkspaces(t.Context()); len(list) != 0 {
		t.Fatalf("targetless calls with an image made workspaces: %+v", list)
	}
	cl.DeleteSession(t.Context(), first)
}
