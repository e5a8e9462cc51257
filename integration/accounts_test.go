package integration

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/chaserhq/chaser/api"
)

// TestAccountsList: the admin lists every account (API and CLI); anyone
// else gets 403.
func TestAccountsList(t *testing.T) {
	s := sharedServer(t)
	key := s.account(t, "free")
	me, err := s.Client(key).Account(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	status, b := s.do(t, s.AdminKey, "GET", "/v1/accounts", "")
	var l api.AccountList
	decodeJSON(t, b, &l)
	found := false
	for _, a := range l.Accounts {
		found = found || (a.ID == me.ID && a.Name == me.Name && a.Tier == "free" && a.APIKey == "")
	}
	if status != 200 || !found {
		t.Errorf("GET /v1/accounts: %d %s, want %s listed without a key", status, b, me.ID)
	}
	status, b = s.do(t, key, "GET", "/v1/accounts", "")
	expectError(t, status, b, 403, "permission_denied")
	res := s.cli(t, s.AdminKey, nil, "accounts", "list")
	if res.Code != 0 || !strings.Contains(res.Stdout, me.Name) || !strings.Contains(res.Stdout, "TIER") {
		t.Errorf("chaser accounts list: %d %q %q", res.Code, res.Stdout, res.Stderr)
	}
}

// TestAccountsDelete: only the admin deletes accounts (others 403); an
// unknown one is 404, the admin's own 409; an account with a live session
// is 409 and keeps working, until ?force=true ends the session (reason
// deleted), removes its workspace's data and stops its key at once. The
// CLI deletes another account the same way.
func TestAccountsDelete(t *testing.T) {
	s := sharedServer(t)
	key := s.account(t, "paid")
	c := s.Client(key)
	me, err := c.Account(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	admin, err := s.Client(s.AdminKey).Account(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	status, b := s.do(t, key, "DELETE", "/v1/accounts/"+me.ID, "")
	expectError(t, status, b, 403, "permission_denied")
	status, b = s.do(t, s.AdminKey, "DELETE", "/v1/accounts/acc-nosuchaccount", "")
	expectError(t, status, b, 404, "not_found")
	status, b = s.do(t, s.AdminKey, "DELETE", "/v1/accounts/"+admin.ID, "")
	expectError(t, status, b, 409, "failed_precondition")
	status, b = s.do(t, s.AdminKey, "DELETE", "/v1/accounts/"+me.ID+"?force=maybe", "")
	expectError(t, status, b, 400, "invalid_argument")

	ws, err := c.CreateWorkspace(t.Context(), api.CreateWorkspaceRequest{Name: "doomed"})
	if err != nil {
		t.Fatal(err)
	}
	sess, err := c.CreateSession(t.Context(), api.CreateSessionRequest{Type: "sandbox", Workspace: "doomed"})
	if err != nil {
		t.Fatal(err)
	}
	data, _ := filepath.Glob(filepath.Join(s.DataDir, "*", ws.ID+"*"))
	if len(data) == 0 {
		t.Fatalf("no data of workspace %s under %s", ws.ID, s.DataDir)
	}
	status, b = s.do(t, s.AdminKey, "DELETE", "/v1/accounts/"+me.ID, "")
	expectError(t, status, b, 409, "failed_precondition")
	if !strings.Contains(string(b), sess.ID) {
		t.Errorf("the 409 does not name the live session %s: %s", sess.ID, b)
	}
	if _, err := c.Account(t.Context()); err != nil {
		t.Fatalf("the key stopped working after a refused delete: %v", err)
	}
	status, b = s.do(t, s.AdminKey, "DELETE", "/v1/accounts/"+me.ID+"?force=true", "")
	if status != 204 {
		t.Fatalf("DELETE ?force=true: %d %s", status, b)
	}
	status, b = s.do(t, key, "GET", "/v1/account", "")
	expectError(t, status, b, 401, "unauthenticated")
	if left, _ := filepath.Glob(filepath.Join(s.DataDir, "*", ws.ID+"*")); len(left) > 0 {
		t.Errorf("the deleted account's workspace data is left: %v", left)
	}
	if left := s.leaks(t, sess.ID); len(left) > 0 {
		t.Errorf("the deleted account's session left: %v", left)
	}
	list, err := s.Client(s.AdminKey).Accounts(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range list {
		if a.ID == me.ID {
			t.Errorf("account %s is still listed", me.ID)
		}
	}
	status, b = s.do(t, s.AdminKey, "DELETE", "/v1/accounts/"+me.ID, "")
	expectError(t, status, b, 404, "not_found")

	other := s.account(t, "free")
	oa, err := s.Client(other).Account(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if res := s.cli(t, other, nil, "accounts", "delete", oa.ID); res.Code == 0 {
		t.Errorf("a non-admin deleted an account with the CLI: %q", res.Stdout)
	}
	res := s.cli(t, s.AdminKey, nil, "accounts", "delete", oa.ID, "--force")
	if res.Code != 0 || !strings.Contains(res.Stdout, "deleted") {
		t.Errorf("chaser accounts delete: %d %q %q", res.Code, res.Stdout, res.Stderr)
	}
	if _, err := s.Client(other).Account(t.Context()); err == nil {
		t.Error("the key of an account deleted by the CLI still works")
	}
}
