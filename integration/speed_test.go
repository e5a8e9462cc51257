package integration

import (
	"strings"
	"testing"

	"github.com/chaserhq/chaser/api"
)

// TestExecHotPathKeepsAnswers: exec answers a running session from the
// server's memory instead of the store (issue 17); the answers must stay
// what the store would give. A session that served commands is still 404
// to another account, still says the workspace it runs, and once deleted
// answers 409 with the reason at once, also to a client whose key was
// just used.
func TestExecHotPathKeepsAnswers(t *testing.T) {
	s := sharedServer(t)
	key := s.account(t, "paid")
	c := s.Client(key)
	res, err := c.Exec(t.Context(), "", api.ExecRequest{Command: "echo $CHASER_SESSION_ID"})
	if err != nil || res.WorkspaceID == nil {
		t.Fatalf("targetless exec on paid = %+v, %v", res, err)
	}
	id := strings.TrimSpace(res.Stdout)
	for range 3 {
		res, err = c.Exec(t.Context(), id, api.ExecRequest{Command: "true"})
		if err != nil || res.WorkspaceID == nil || *res.WorkspaceID == "" {
			t.Fatalf("exec in a workspace session = %+v, %v", res, err)
		}
	}
	other := s.account(t, "paid")
	status, body := s.do(t, other, "POST", "/v1/sessions/"+id+"/exec", `{"command":"true"}`)
	expectError(t, status, body, 404, "not_found")
	status, body = s.do(t, other, "GET", "/v1/sessions/"+id+"/commands", "")
	expectError(t, status, body, 404, "not_found")

	eph := s.sandbox(t, key)
	if _, err := c.Exec(t.Context(), eph, api.ExecRequest{Command: "true"}); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteSession(t.Context(), eph); err != nil {
		t.Fatal(err)
	}
	status, body = s.do(t, key, "POST", "/v1/sessions/"+eph+"/exec", `{"command":"true"}`)
	expectError(t, status, body, 409, "failed_precondition")
	if !strings.Contains(string(body), "deleted") {
		t.Fatalf("error does not say why: %s", body)
	}
	status, body = s.do(t, other, "POST", "/v1/sessions/"+eph+"/exec", `{"command":"true"}`)
	expectError(t, status, body, 404, "not_found")
}
