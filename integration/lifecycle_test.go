package integration

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/testserver"
)

// agentPID returns the host pid of a sandbox's init (the agent), as the
// runtime recorded it.
func (s *Server) agentPID(t *testing.T, id string) string {
	t.Helper()
	pid, err := readFileHost(filepath.Join(s.stateDir(id), "pid"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(pid))
}

// waitEnded waits until session id has ended and returns it.
func (s *Server) waitEnded(t *testing.T, key, id string, within time.Duration) api.Session {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		sess, err := s.Client(key).GetSession(t.Context(), id)
		if err != nil {
			t.Fatalf("session %s: %v", id, err)
		}
		if sess.EndedAt != nil {
			return sess
		}
		if time.Now().After(deadline) {
			t.Fatalf("session %s did not end within %s: %+v", id, within, sess)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestAgentUnresponsive freezes a sandbox's agent from the host (SIGSTOP
// of its init) and checks that health checks end the session as failed,
// reason agent_unresponsive, within a bounded time; that a command running
// meanwhile returns instead of hanging; that the sandbox is released; and
// that calls to the session answer at once with a clear 409.
func TestAgentUnresponsive(t *testing.T) {
	s := newServer(t, "--health-interval", "200ms")
	key := s.account(t, "free")
	c := s.Client(key)
	id := s.sandbox(t, key)
	pid := s.agentPID(t, id)

	// A foreground command, as `chaser shell -c` runs, started before the
	// freeze.
	done := make(chan error, 1)
	go func() {
		_, err := c.Exec(context.WithoutCancel(t.Context()), id, api.ExecRequest{Command: "sleep 120"})
		done <- err
	}()
	time.Sleep(500 * time.Millisecond)
	if out, err := exec.Command("kill", "-STOP", pid).CombinedOutput(); err != nil {
		t.Fatalf("kill -STOP: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("kill", "-CONT", pid).Run() })

	// 3 missed checks of up to 2 s each, every 200 ms: well within 20 s.
	sess := s.waitEnded(t, key, id, 20*time.Second)
	if sess.Status != api.StatusFailed || sess.Reason != api.ReasonAgentUnresponsive {
		t.Fatalf("ended session = %+v, want failed / agent_unresponsive", sess)
	}
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "agent_unresponsive") {
			t.Fatalf("exec running through the freeze: %v, want an error naming agent_unresponsive", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("exec running through the freeze still hangs after the session ended")
	}
	waitFor(t, func() bool { return len(s.leaks(t, id)) == 0 })

	begin := time.Now()
	status, body := s.do(t, key, "POST", "/v1/sessions/"+id+"/exec", `{"command":"true"}`)
	if took := time.Since(begin); took > 2*time.Second {
		t.Fatalf("exec on the ended session took %s", took)
	}
	expectError(t, status, body, 409, "failed_precondition")
	if !strings.Contains(string(body), "agent_unresponsive") {
		t.Fatalf("error does not say why: %s", body)
	}
	// The ended session is not listed and no longer counts.
	list, err := c.ListSessions(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range list {
		if x.ID == id {
			t.Fatalf("ended session listed: %+v", x)
		}
	}
	// Deleting it changes nothing: the reason stays.
	if err := c.DeleteSession(t.Context(), id); err != nil {
		t.Fatalf("delete of an ended session: %v", err)
	}
	if again, err := c.GetSession(t.Context(), id); err != nil || again.Reason != api.ReasonAgentUnresponsive {
		t.Fatalf("after delete: %+v %v", again, err)
	}
}

// TestAgentFrozenByCgroup freezes a whole sandbox as `runc pause` does (its
// cgroup freezer): the runtime then calls it paused, not running, and the
// session must still end as agent_unresponsive — not died — and be
// released without leaks although its processes are frozen.
func TestAgentFrozenByCgroup(t *testing.T) {
	s := newServer(t, "--health-interval", "200ms")
	key := s.account(t, "free")
	id := s.sandbox(t, key)
	root := filepath.Join(s.DataDir, "runc") // the runtime's --root
	if out, err := exec.Command("runc", "--root", root, "pause", id).CombinedOutput(); err != nil {
		t.Fatalf("runc pause: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("runc", "--root", root, "resume", id).Run() })

	sess := s.waitEnded(t, key, id, 20*time.Second)
	if sess.Status != api.StatusFailed || sess.Reason != api.ReasonAgentUnresponsive {
		t.Fatalf("ended session = %+v, want failed / agent_unresponsive", sess)
	}
	waitFor(t, func() bool { return len(s.leaks(t, id)) == 0 })
}

// TestOOMReason makes the OOM killer take a sandbox's init (its agent made
// the likeliest victim, then memory exhausted) and checks the session ends
// as failed with reason oom.
func TestOOMReason(t *testing.T) {
	s := newServer(t, "--health-interval", "200ms")
	key := s.account(t, "free") // 512 MB
	c := s.Client(key)
	id := s.sandbox(t, key)
	// The command itself fails when the sandbox goes; its answer does not
	// matter, only the session's end.
	_, _ = c.Exec(t.Context(), id, api.ExecRequest{
		Command: `echo 1000 > /proc/1/oom_score_adj && python3 -c 'x = bytearray(1 << 30)' || head -c 2G /dev/zero | tail > /dev/null`,
	})
	// Releasing a sandbox the OOM killer is tearing through can be slow on
	// a loaded machine: the bound is generous.
	sess := s.waitEnded(t, key, id, time.Minute)
	if sess.Status != api.StatusFailed || sess.Reason != api.ReasonOOM {
		t.Fatalf("ended session = %+v, want failed / oom", sess)
	}
	waitFor(t, func() bool { return len(s.leaks(t, id)) == 0 })
}

// TestOOMEndsAtOnce checks that a sandbox the OOM killer takes down (all of
// it under runsc; under runc, its agent, made the OOM killer's choice) is
// not shown running afterwards: the server watches the sandbox's process
// and ends the session when it exits, without waiting for a health check
// (here, an hour apart).
func TestOOMEndsAtOnce(t *testing.T) {
	s := newServer(t, "--health-interval", "1h")
	key := s.account(t, "free") // 512 MB
	c := s.Client(key)
	id := s.sandbox(t, key)
	_, _ = c.Exec(t.Context(), id, api.ExecRequest{
		Command: `echo 1000 > /proc/1/oom_score_adj && python3 -c 'x = bytearray(1 << 30)' || head -c 2G /dev/zero | tail > /dev/null`,
	})
	// The exec answers once the sandbox is gone; from then on the session
	// must leave running within moments.
	deadline := time.Now().Add(3 * time.Second)
	for {
		sess, err := c.GetSession(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if sess.Status != api.StatusRunning {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("session still running 3 s after its sandbox died: %+v", sess)
		}
		time.Sleep(20 * time.Millisecond)
	}
	list, err := c.ListSessions(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range list {
		if x.ID == id && x.Status == api.StatusRunning {
			t.Fatalf("listed running: %+v", x)
		}
	}
	sess := s.waitEnded(t, key, id, time.Minute)
	if sess.Status != api.StatusFailed || sess.Reason != api.ReasonOOM {
		t.Fatalf("ended session = %+v, want failed / oom", sess)
	}
}

// TestDeleteReason checks that a deleted session answers GET with status
// stopped and reason deleted, and calls to it a clear 409.
func TestDeleteReason(t *testing.T) {
	s := sharedServer(t)
	key := s.account(t, "free")
	c := s.Client(key)
	id := s.sandbox(t, key)
	if err := c.DeleteSession(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	sess, err := c.GetSession(t.Context(), id)
	if err != nil || sess.Status != api.StatusStopped || sess.Reason != api.ReasonDeleted || sess.EndedAt == nil {
		t.Fatalf("deleted session = %+v, %v", sess, err)
	}
	status, body := s.do(t, key, "POST", "/v1/sessions/"+id+"/exec", `{"command":"true"}`)
	expectError(t, status, body, 409, "failed_precondition")
	if !strings.Contains(string(body), "deleted") {
		t.Fatalf("error does not say why: %s", body)
	}
	// Another account still gets 404.
	other := s.account(t, "free")
	status, body = s.do(t, other, "GET", "/v1/sessions/"+id, "")
	expectError(t, status, body, 404, "not_found")
}

// TestTierLimitParallel sends more parallel creates than the tier allows
// to a fresh account and checks they reach the limit exactly, in one wave,
// and that the refusals count the account's sandboxes right.
func TestTierLimitParallel(t *testing.T) {
	s := newServer(t)
	for _, tc := range []struct {
		tier         string
		limit, tries int
	}{
		{"free", 3, 10},
		{"paid", 20, 25},
	} {
		t.Run(tc.tier, func(t *testing.T) {
			key := s.account(t, tc.tier)
			type answer struct {
				status int
				body   []byte
			}
			answers := make(chan answer, tc.tries)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for range tc.tries {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					status, body := s.do(t, key, "POST", "/v1/sessions", `{"type":"sandbox","ephemeral":true}`)
					answers <- answer{status, body}
				}()
			}
			close(start)
			wg.Wait()
			close(answers)
			created, refused := 0, 0
			for a := range answers {
				switch a.status {
				case 201:
					created++
				case 429:
					refused++
					want := fmt.Sprintf("has %d sandboxes", tc.limit)
					if !strings.Contains(string(a.body), want) {
						t.Errorf("429 does not say %q: %s", want, a.body)
					}
				default:
					t.Errorf("create answered %d: %s", a.status, a.body)
				}
			}
			if created != tc.limit || refused != tc.tries-tc.limit {
				t.Fatalf("%d parallel creates (limit %d): %d created, %d refused; want %d and %d",
					tc.tries, tc.limit, created, refused, tc.limit, tc.tries-tc.limit)
			}
			list, err := s.Client(key).ListSessions(t.Context())
			if err != nil || len(list) != tc.limit {
				t.Fatalf("sessions listed: %d %v", len(list), err)
			}
		})
	}
}

// TestRecoveryKillsOrphanedForeground starts a foreground command (its
// caller waits on the answer) and a background one, kills the server
// (SIGKILL: the caller's connection dies with it), restarts it, and checks
// the foreground command was killed while the background one lives on.
func TestRecoveryKillsOrphanedForeground(t *testing.T) {
	s := newServer(t)
	key := s.account(t, "free")
	c := s.Client(key)
	sess, err := c.CreateSession(t.Context(), api.CreateSessionRequest{Type: "sandbox", Ephemeral: true})
	if err != nil {
		t.Fatal(err)
	}
	bg, err := c.StartBackground(t.Context(), sess.ID, api.ExecRequest{Command: "sleep 301"})
	if err != nil {
		t.Fatal(err)
	}
	go c.Exec(context.WithoutCancel(t.Context()), sess.ID, api.ExecRequest{Command: "sleep 300"})
	var fg string
	waitFor(t, func() bool {
		cmds, err := c.Commands(t.Context(), sess.ID)
		for _, x := range cmds {
			if err == nil && !x.Background && x.Status == api.CommandRunning {
				fg = x.ID
			}
		}
		return fg != ""
	})
	s.kill()

	s2 := startServer(t, s.DataDir)
	defer func() {
		s2.stop()
		if t.Failed() {
			t.Logf("server log:\n%s", s2.Log())
		}
	}()
	c = s2.Client(key)
	status := map[string]string{}
	deadline := time.Now().Add(5 * time.Second)
	for status[fg] == "" || status[fg] == api.CommandRunning && time.Now().Before(deadline) {
		cmds, err := c.Commands(t.Context(), sess.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range cmds {
			status[x.ID] = x.Status
		}
		time.Sleep(50 * time.Millisecond)
	}
	if status[fg] == api.CommandRunning || status[bg] != api.CommandRunning {
		t.Fatalf("after restart: foreground %s is %q (want killed), background %s is %q (want running)",
			fg, status[fg], bg, status[bg])
	}
	res, err := c.Exec(t.Context(), sess.ID, api.ExecRequest{Command: "ps -eo args"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(res.Stdout, "sleep 300") || !strings.Contains(res.Stdout, "sleep 301") {
		t.Fatalf("processes after restart:\n%s", res.Stdout)
	}
	if err := c.DeleteSession(t.Context(), sess.ID); err != nil {
		t.Fatal(err)
	}
}

// TestServerErrorLogged makes a create fail inside the server (the runtime
// cannot make the sandbox's state directory) and checks the 5xx is logged
// with its request id and cause.
func TestServerErrorLogged(t *testing.T) {
	s := newServer(t)
	key := s.account(t, "free")
	dir := filepath.Join(s.DataDir, "sandboxes")
	if err := os.Rename(dir, dir+".away"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	defer func() {
		os.Remove(dir)
		os.Rename(dir+".away", dir)
	}()
	req, err := http.NewRequestWithContext(t.Context(), "POST", s.URL+"/v1/sessions", strings.NewReader(`{"type":"sandbox","ephemeral":true}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("X-Request-Id", "create-fails-1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode < 500 {
		t.Fatalf("create with a broken state dir: %d %s", resp.StatusCode, body)
	}
	// The log arrives through the server's stderr pipe: give it a moment.
	var line string
	for deadline := time.Now().Add(10 * time.Second); line == "" && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		for _, l := range strings.Split(s.Log(), "\n") {
			if strings.Contains(l, "request_id=create-fails-1") && strings.Contains(l, "level=ERROR") {
				line = l
			}
		}
	}
	if line == "" || !strings.Contains(line, "err=") || !strings.Contains(line, "create sandbox") {
		t.Fatalf("5xx not logged with its request id and cause; log:\n%s", s.Log())
	}
}

// TestShutdownWhileReaping stops the server (SIGTERM) while the reaper and
// the health checker are ending sessions, and checks the stop is clean:
// the loops are joined before shutdown tears down the same sessions, so
// nothing is torn down twice or left behind. Run against a -race binary
// (CHASER_TEST_BIN) it also checks the server reports no data race.
func TestShutdownWhileReaping(t *testing.T) {
	s := startServer(t, "", "--idle-timeout", "300ms", "--reap-interval", "50ms", "--health-interval", "50ms")
	defer func() {
		release(s.DataDir)
		os.RemoveAll(s.DataDir)
	}()
	key := s.account(t, "paid")
	c := s.Client(key)
	var ids []string
	for range 6 {
		sess, err := c.CreateSession(t.Context(), api.CreateSessionRequest{Type: "sandbox", Ephemeral: true})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, sess.ID)
	}
	// Idle reaping begins about now: stop in the middle of it.
	time.Sleep(300 * time.Millisecond)
	if err := s.stop(); err != nil {
		t.Fatalf("stop while reaping: %v\n%s", err, s.Log())
	}
	for _, bad := range []string{"DATA RACE", "shutdown:", "level=ERROR"} {
		if strings.Contains(s.Log(), bad) {
			t.Fatalf("server log has %q:\n%s", bad, s.Log())
		}
	}
	for _, id := range ids {
		if left := s.leaks(t, id); len(left) > 0 {
			t.Fatalf("left behind: %v", left)
		}
	}
}

// TestAgentThatNeverServes: a create answers once the runtime has started
// the sandbox's agent, without waiting for it to serve (issue 17: its Go
// start overlaps the client's next request). So an agent that exits at
// start, or starts and never serves, is found after the create by what
// finds any agent's end: the exit watch (reason died) and the health
// checks (agent_unresponsive). Either way the session ends, a command
// sent meanwhile gets an error, not a hang, and nothing of it is left.
func TestAgentThatNeverServes(t *testing.T) {
	for _, tc := range []struct {
		name, script, reason string
	}{
		{"exits", "echo 'agent: cannot start' >&2; exit 3", api.ReasonDied},
		// sleep inherits the listening socket (fd 3): connections queue
		// and nothing ever answers them.
		{"hangs", "exec sleep 100000", api.ReasonAgentUnresponsive},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			bin := filepath.Join(dir, "chaser")
			raw, err := os.ReadFile(binary)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(bin, raw, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "chaser-agent"), []byte("#!/bin/sh\n"+tc.script+"\n"), 0o755); err != nil {
				t.Fatal(err)
			}
			ts, err := testserver.StartBinary(bin, "", append(runtimeArgs(), "--health-interval", "200ms")...)
			if err != nil {
				t.Fatal(err)
			}
			s := &Server{ts}
			s.stopAtEnd(t)
			key := s.account(t, "free")
			c := s.Client(key)
			sess, err := c.CreateSession(t.Context(), api.CreateSessionRequest{Type: "sandbox", Ephemeral: true})
			if err != nil {
				t.Fatalf("create: %v (the runtime started the agent: the create succeeds)", err)
			}
			done := make(chan error, 1)
			go func() {
				_, err := c.Exec(t.Context(), sess.ID, api.ExecRequest{Command: "true"})
				done <- err
			}()
			select {
			case err := <-done:
				if err == nil {
					t.Fatal("a command ran in a sandbox whose agent never served")
				}
				t.Logf("exec: %v", err)
			case <-time.After(60 * time.Second):
				t.Fatal("exec still waits for an agent that never serves")
			}
			if got := s.waitEnded(t, key, sess.ID, 60*time.Second); got.Status != api.StatusFailed || got.Reason != tc.reason {
				t.Fatalf("session ended as %s / %s, want failed / %s", got.Status, got.Reason, tc.reason)
			}
			status, body := s.do(t, key, "POST", "/v1/sessions/"+sess.ID+"/exec", `{"command":"true"}`)
			if status < 400 || status >= 500 || !strings.Contains(string(body), tc.reason) {
				t.Fatalf("exec after the end: %d %s, want a 4xx naming %s", status, body, tc.reason)
			}
			waitFor(t, func() bool { return len(s.leaks(t, sess.ID)) == 0 })
		})
	}
}
