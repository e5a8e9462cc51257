package integration

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"strings"
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
