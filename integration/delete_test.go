package integration

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chaserhq/chaser/api"
)

// TestDeleteDuringForkStorm deletes sandboxes full of processes still being
// forked: after the kill they take a while to leave their cgroups. The first
// DELETE must succeed (204) and leave nothing behind; a 500 listing host
// cgroup paths and a session stuck in "stopping" was the bug.
func TestDeleteDuringForkStorm(t *testing.T) {
	s := sharedServer(t)
	key := s.account(t, "paid") // 1024 pids: a storm big enough to be slow to die
	c := s.Client(key)
	for round := range 3 {
		sess, err := c.CreateSession(t.Context(), api.CreateSessionRequest{Type: "sandbox", Ephemeral: true})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Exec(t.Context(), sess.ID, api.ExecRequest{Command: "bomb(){ bomb | bomb & }; bomb", Background: true}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Second) // let the storm reach the pids limit
		status, body := s.do(t, key, "DELETE", "/v1/sessions/"+sess.ID, "")
		if status != http.StatusNoContent {
			t.Fatalf("round %d: DELETE = %d %s", round, status, body)
		}
		if strings.Contains(string(body), "/sys/fs/cgroup") {
			t.Fatalf("round %d: answer shows host paths: %s", round, body)
		}
		// An ended session keeps its record for a while, with its reason:
		// deleted, or — when the storm took the agent (init) down before the
		// DELETE, which the exit watch records at once — died or oom.
		got, err := c.GetSession(t.Context(), sess.ID)
		ended := got.Status == "stopped" && got.Reason == "deleted" ||
			got.Status == "failed" && (got.Reason == "died" || got.Reason == "oom")
		if err != nil || !ended {
			t.Fatalf("round %d: session after DELETE: %+v %v", round, got, err)
		}
		if left := s.leaks(t, sess.ID); len(left) > 0 {
			t.Fatalf("round %d: left behind: %v", round, left)
		}
	}
}
