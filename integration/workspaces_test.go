package integration

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/chaserhq/chaser/api"
)

// TestWorkspaces follows the seed's persistent flow with the CLI and checks
// that everything a sandbox changes survives session ends and restarts.
func TestWorkspaces(t *testing.T) {
	s := newServer(t)
	key := s.account(t, "paid")
	c := s.Client(key)
	ctx := t.Context()

	r := s.cli(t, key, nil, "workspaces", "create", "--session-type", "sandbox", "--name", "dev", "--json")
	if r.Code != 0 {
		t.Fatalf("workspaces create: %s", r.Stderr)
	}
	var ws api.Workspace
	decodeJSON(t, []byte(r.Stdout), &ws)
	if ws.ID == "" || ws.Name != "dev" || ws.Image != "host" || ws.SessionType != "sandbox" {
		t.Fatalf("workspace = %s", r.Stdout)
	}
	if r = s.cli(t, key, nil, "workspaces", "default", "set", "dev", "--sandbox"); r.Code != 0 {
		t.Fatalf("default set: %s", r.Stderr)
	}
	r = s.cli(t, key, nil, "sandbox", "--workspace", "dev", "--json")
	var sess api.Session
	decodeJSON(t, []byte(r.Stdout), &sess)
	if r.Code != 0 || sess.WorkspaceID == nil || *sess.WorkspaceID != ws.ID || sess.Ephemeral {
		t.Fatalf("sandbox --workspace: %d %s %s", r.Code, r.Stdout, r.Stderr)
	}
	// The same session while it runs.
	r = s.cli(t, key, nil, "sandbox", "--workspace", "dev", "--json")
	var again api.Session
	decodeJSON(t, []byte(r.Stdout), &again)
	if again.ID != sess.ID {
		t.Fatalf("second sandbox --workspace made %s, want the running %s", again.ID, sess.ID)
	}
	// Change files everywhere: /workspace, a "package" in /usr/local, a dotfile.
	setup := "echo data > /workspace/file && mkdir -p /usr/local/bin && printf '#!/bin/sh\\necho tool-ok\\n' > /usr/local/bin/mytool && chmod +x /usr/local/bin/mytool && echo 'export DOT=1' >> /root/.bashrc"
	if res, err := c.Exec(ctx, sess.ID, api.ExecRequest{Command: setup}); err != nil || res.ExitCode != 0 {
		t.Fatalf("setup: %+v %v", res, err)
	}
	check := func(id string) {
		t.Helper()
		res, err := c.Exec(ctx, id, api.ExecRequest{Command: "cat /workspace/file && mytool && grep -c DOT /root/.bashrc && echo $CHASER_WORKSPACE_ID"})
		if err != nil || res.Stdout != "data\ntool-ok\n1\n"+ws.ID+"\n" {
			t.Fatalf("workspace content in %s: %+v %v", id, res, err)
		}
	}
	check(sess.ID)

	// Session ends; a new one on the workspace sees the same files.
	if err := c.DeleteSession(ctx, sess.ID); err != nil {
		t.Fatal(err)
	}
	sess2, err := c.CreateSession(ctx, api.CreateSessionRequest{Type: "sandbox", Workspace: "dev"})
	if err != nil || sess2.ID == sess.ID {
		t.Fatalf("resume: %+v %v", sess2, err)
	}
	check(sess2.ID)

	// Graceful restart: sessions end, the workspace stays.
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	s2 := startServer(t, s.DataDir)
	c = s2.Client(key)
	sess3, err := c.CreateSession(ctx, api.CreateSessionRequest{Type: "sandbox", Workspace: "dev"})
	if err != nil {
		t.Fatalf("after restart: %v\n%s", err, s2.Log())
	}
	check(sess3.ID)
	// Crash: the running workspace session is found again.
	s2.kill()
	s3 := startServer(t, s.DataDir)
	defer s3.stop()
	c = s3.Client(key)
	check(sess3.ID)

	// A paid targetless request now uses the default workspace ("dev").
	res, err := c.Exec(ctx, "", api.ExecRequest{Command: "cat /workspace/file"})
	if err != nil || res.Stdout != "data\n" || res.WorkspaceID == nil || *res.WorkspaceID != ws.ID || res.SessionID != sess3.ID {
		t.Fatalf("targetless exec on default workspace: %+v %v", res, err)
	}
	// --ephemeral bypasses it.
	res, err = c.Exec(ctx, "", api.ExecRequest{Command: "cat /workspace/file 2>&1; true", Ephemeral: true})
	if err != nil || strings.Contains(res.Stdout, "data") || res.WorkspaceID != nil {
		t.Fatalf("ephemeral exec: %+v %v", res, err)
	}

	// Delete: refused while a session runs, unless forced; data gone.
	code, body := s3.do(t, key, "DELETE", "/v1/workspaces/dev", "")
	expectError(t, code, body, 409, "failed_precondition")
	r = s3.cli(t, key, nil, "workspaces", "delete", "dev", "--force")
	if r.Code != 0 {
		t.Fatalf("delete --force: %s", r.Stderr)
	}
	if _, err := os.Stat(filepath.Join(s.DataDir, "workspaces", ws.ID)); !os.IsNotExist(err) {
		t.Fatalf("workspace data still there: %v", err)
	}
	if left := s3.leaks(t, sess3.ID); len(left) > 0 {
		t.Fatalf("session of deleted workspace left: %v", left)
	}
	code, body = s3.do(t, key, "POST", "/v1/sessions", `{"type":"sandbox","workspace":"dev"}`)
	expectError(t, code, body, 404, "not_found")
}

// TestTargetlessTiers checks where targetless requests run per tier.
func TestTargetlessTiers(t *testing.T) {
	s := sharedServer(t)
	free := s.account(t, "free")
	paid := s.account(t, "paid")
	ctx := t.Context()

	// Free: workspaces refused; targetless is always ephemeral.
	code, body := s.do(t, free, "POST", "/v1/workspaces", `{"name":"dev","session_type":"sandbox"}`)
	expectError(t, code, body, 403, "permission_denied")
	if !strings.Contains(string(body), "paid") {
		t.Errorf("403 does not say a paid account is needed: %s", body)
	}
	r := s.cli(t, free, nil, "workspaces", "create", "--name", "dev", "--session-type", "sandbox")
	if r.Code == 0 || !strings.Contains(r.Stderr, "paid") {
		t.Fatalf("free CLI workspace create: %d %s", r.Code, r.Stderr)
	}
	res, err := s.Client(free).Exec(ctx, "", api.ExecRequest{Command: "echo hi > /workspace/x; ls /workspace"})
	if err != nil || res.WorkspaceID != nil {
		t.Fatalf("free exec: %+v %v", res, err)
	}
	if code, _ := s.do(t, free, "GET", "/v1/sessions/"+res.SessionID, ""); code != 404 {
		t.Fatalf("free targetless sandbox survived: %d", code)
	}
	r = s.cli(t, free, nil, "sandbox", "--json")
	var sess api.Session
	decodeJSON(t, []byte(r.Stdout), &sess)
	if !sess.Ephemeral || sess.WorkspaceID != nil {
		t.Fatalf("free targetless sandbox: %s", r.Stdout)
	}
	s.Client(free).DeleteSession(ctx, sess.ID)

	// Paid: first targetless use makes a default workspace, later ones reuse it.
	res1, err := s.Client(paid).Exec(ctx, "", api.ExecRequest{Command: "echo one > /workspace/note"})
	if err != nil || res1.WorkspaceID == nil {
		t.Fatalf("paid first exec: %+v %v", res1, err)
	}
	res2, err := s.Client(paid).Exec(ctx, "", api.ExecRequest{Command: "cat /workspace/note"})
	if err != nil || res2.Stdout != "one\n" || *res2.WorkspaceID != *res1.WorkspaceID {
		t.Fatalf("paid second exec: %+v %v", res2, err)
	}
	r = s.cli(t, paid, nil, "workspaces", "default", "get", "--sandbox", "--json")
	var def api.Workspace
	decodeJSON(t, []byte(r.Stdout), &def)
	if def.ID != *res1.WorkspaceID || def.Name != "default" || !def.Default || def.SessionID == nil {
		t.Fatalf("default workspace: %s", r.Stdout)
	}
	r = s.cli(t, paid, nil, "shell", "-c", "cat /workspace/note")
	if r.Code != 0 || r.Stdout != "one\n" {
		t.Fatalf("paid targetless shell: %d %q %q", r.Code, r.Stdout, r.Stderr)
	}
	r = s.cli(t, paid, nil, "sandbox", "--json")
	decodeJSON(t, []byte(r.Stdout), &sess)
	if sess.WorkspaceID == nil || *sess.WorkspaceID != def.ID || sess.ID != *def.SessionID {
		t.Fatalf("paid targetless sandbox: %s", r.Stdout)
	}
	r = s.cli(t, paid, nil, "sandbox", "--ephemeral", "--json")
	decodeJSON(t, []byte(r.Stdout), &sess)
	if !sess.Ephemeral || sess.WorkspaceID != nil {
		t.Fatalf("paid --ephemeral sandbox: %s", r.Stdout)
	}
	s.Client(paid).DeleteSession(ctx, sess.ID)
	s.Client(paid).DeleteWorkspace(ctx, "default", true)
}

// TestWorkspaceBadInput checks the workspace API's errors.
func TestWorkspaceBadInput(t *testing.T) {
	s := sharedServer(t)
	key := s.account(t, "paid")
	other := s.account(t, "paid")
	if code, body := s.do(t, key, "POST", "/v1/workspaces", `{"name":"ws1","session_type":"sandbox"}`); code != 201 {
		t.Fatalf("create: %d %s", code, body)
	}
	t.Cleanup(func() { s.Client(key).DeleteWorkspace(t.Context(), "ws1", true) })
	cases := []struct {
		name, key, method, path, body string
		status                        int
		code                          string
	}{
		{"duplicate", key, "POST", "/v1/workspaces", `{"name":"ws1"}`, 409, "already_exists"},
		{"invalid name", key, "POST", "/v1/workspaces", `{"name":"../etc"}`, 400, "invalid_argument"},
		{"empty name", key, "POST", "/v1/workspaces", `{"name":""}`, 400, "invalid_argument"},
		{"upper case name", key, "POST", "/v1/workspaces", `{"name":"Dev"}`, 400, "invalid_argument"},
		{"bad session type", key, "POST", "/v1/workspaces", `{"name":"x","session_type":"vm"}`, 400, "invalid_argument"},
		{"unknown workspace", key, "GET", "/v1/workspaces/nope", "", 404, "not_found"},
		{"unknown workspace session", key, "POST", "/v1/sessions", `{"type":"sandbox","workspace":"nope"}`, 404, "not_found"},
		{"unknown workspace exec", key, "POST", "/v1/exec", `{"command":"true","workspace":"nope"}`, 404, "not_found"},
		{"workspace and image", key, "POST", "/v1/sessions", `{"type":"sandbox","workspace":"ws1","image":"host"}`, 400, "invalid_argument"},
		{"other account's workspace", other, "GET", "/v1/workspaces/ws1", "", 404, "not_found"},
		{"other account's delete", other, "DELETE", "/v1/workspaces/ws1", "", 404, "not_found"},
		{"other account's session", other, "POST", "/v1/sessions", `{"type":"sandbox","workspace":"ws1"}`, 404, "not_found"},
		{"other account's default", other, "PUT", "/v1/defaults/sandbox", `{"workspace":"ws1"}`, 404, "not_found"},
		{"bad default type", key, "PUT", "/v1/defaults/vm", `{"workspace":"ws1"}`, 400, "invalid_argument"},
		{"bad force", key, "DELETE", "/v1/workspaces/ws1?force=maybe", "", 400, "invalid_argument"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, body := s.do(t, c.key, c.method, c.path, c.body)
			expectError(t, status, body, c.status, c.code)
		})
	}
	if list, _ := s.Client(other).ListWorkspaces(t.Context()); len(list) != 0 {
		t.Fatalf("other account lists %v", list)
	}

	// Concurrent requests for the same workspace get one session.
	var wg sync.WaitGroup
	ids := make([]string, 5)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sess, err := s.Client(key).CreateSession(t.Context(), api.CreateSessionRequest{Type: "sandbox", Workspace: "ws1"})
			if err != nil {
				ids[i] = err.Error()
				return
			}
			ids[i] = sess.ID
		}()
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] || !strings.HasPrefix(id, "s-") {
			t.Fatalf("concurrent workspace sessions: %v", ids)
		}
	}
}
