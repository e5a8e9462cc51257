package integration

import (
	"context"
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

// TestForkBombKeepsSandbox fills a sandbox's pids limit with a fork storm:
// the sandbox must live on (its agent, the init, used to die when the Go
// runtime could not start a thread), say plainly why a command cannot
// start meanwhile, and be usable again once the user kills the storm
// through the API.
func TestForkBombKeepsSandbox(t *testing.T) {
	s := sharedServer(t)
	key := s.account(t, "paid")
	c := s.Client(key)
	sess, err := c.CreateSession(t.Context(), api.CreateSessionRequest{Type: "sandbox", Ephemeral: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.DeleteSession(context.Background(), sess.ID)
	bomb, err := c.Exec(t.Context(), sess.ID, api.ExecRequest{Command: "bomb(){ bomb | bomb & }; bomb", Background: true})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(4 * time.Second) // let the storm reach the pids limit and hold it
	got, err := c.GetSession(t.Context(), sess.ID)
	if err != nil || got.Status != "running" {
		t.Fatalf("session during the storm: %+v %v", got, err)
	}
	// A command cannot start while the storm holds every pid (one may
	// slip into a slot freed for a moment).
	status, body := s.do(t, key, "POST", "/v1/sessions/"+sess.ID+"/exec", `{"command":"echo hi"}`)
	if status != http.StatusOK && (status != http.StatusTooManyRequests || !strings.Contains(string(body), "pids limit")) {
		t.Fatalf("exec during the storm: %d %s", status, body)
	}
	// The storm's first shell has exited; its process group lives on.
	if err := c.Signal(t.Context(), sess.ID, bomb.CommandID, "KILL"); err != nil {
		t.Fatalf("KILL to the storm's command: %v", err)
	}
	var res api.ExecResult
	deadline := time.Now().Add(time.Minute)
	for {
		res, err = c.Exec(t.Context(), sess.ID, api.ExecRequest{Command: "echo hi"})
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if err != nil || res.ExitCode != 0 || res.Stdout != "hi\n" {
		t.Fatalf("exec after the storm was killed: %+v %v", res, err)
	}
	if got, err := c.GetSession(t.Context(), sess.ID); err != nil || got.Status != "running" {
		t.Fatalf("session after the storm: %+v %v", got, err)
	}
}
