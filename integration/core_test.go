package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/client"
	"github.com/chaserhq/chaser/internal/daemon"
	"github.com/chaserhq/chaser/internal/runtime/runtimetest"
)

// TestQuickstart drives the CLI the way the seed page shows: create a
// sandbox, run commands, list, delete — and checks nothing is left behind.
func TestQuickstart(t *testing.T) {
	s := sharedServer(t)
	key := s.account(t, "paid")

	r := s.cli(t, key, nil, "sandbox", "--ephemeral", "--json")
	if r.Code != 0 {
		t.Fatalf("chaser sandbox: %d %s", r.Code, r.Stderr)
	}
	var sess api.Session
	decodeJSON(t, []byte(r.Stdout), &sess)
	if sess.ID == "" || sess.Type != "sandbox" || sess.Status != "running" || !sess.Ephemeral ||
		sess.WorkspaceID != nil || sess.Image != "host" || sess.CreatedAt.IsZero() || !sess.ExpiresAt.After(sess.CreatedAt) {
		t.Fatalf("session = %+v", sess)
	}
	if !strings.Contains(r.Stdout, `"workspace_id": null`) {
		t.Errorf("workspace_id is not null: %s", r.Stdout)
	}

	r = s.cli(t, key, nil, "shell", sess.ID, "-c", "node -v && pwd && hostname && echo oops >&2 && exit 3")
	if r.Code != 3 || !strings.Contains(r.Stdout, "/workspace\n"+sess.ID+"\n") || !strings.HasPrefix(r.Stdout, "v") || r.Stderr != "oops\n" {
		t.Fatalf("shell -c: code %d stdout %q stderr %q", r.Code, r.Stdout, r.Stderr)
	}
	r = s.cli(t, key, strings.NewReader("hello\nworld\n"), "shell", sess.ID, "-c", "tr a-z A-Z; echo done")
	if r.Code != 0 || r.Stdout != "HELLO\nWORLD\ndone\n" {
		t.Fatalf("piped stdin: code %d stdout %q stderr %q", r.Code, r.Stdout, r.Stderr)
	}

	r = s.cli(t, key, nil, "sessions", "list", "--json")
	var list api.SessionList
	decodeJSON(t, []byte(r.Stdout), &list)
	if len(list.Sessions) != 1 || list.Sessions[0].ID != sess.ID {
		t.Fatalf("sessions list = %s", r.Stdout)
	}
	r = s.cli(t, key, nil, "sessions", "get", sess.ID, "--json")
	var got api.Session
	decodeJSON(t, []byte(r.Stdout), &got)
	if got.ID != sess.ID {
		t.Fatalf("sessions get = %s", r.Stdout)
	}
	if r = s.cli(t, key, nil, "sessions", "delete", sess.ID); r.Code != 0 {
		t.Fatalf("delete: %s", r.Stderr)
	}
	// The ended session shows why it ended.
	if r = s.cli(t, key, nil, "sessions", "get", sess.ID, "--json"); r.Code != 0 || !strings.Contains(r.Stdout, `"reason": "deleted"`) && !strings.Contains(r.Stdout, `"reason":"deleted"`) {
		t.Fatalf("get after delete: %d %s %s", r.Code, r.Stdout, r.Stderr)
	}
	if left := s.leaks(t, sess.ID); len(left) > 0 {
		t.Fatalf("left behind after delete: %v", left)
	}

	// Targetless and ephemeral: a fresh sandbox for the command, gone
	// afterwards.
	r = s.cli(t, key, nil, "shell", "--ephemeral", "-c", "echo $CHASER_SESSION_ID")
	id := strings.TrimSpace(r.Stdout)
	if r.Code != 0 || !strings.HasPrefix(id, "s-") {
		t.Fatalf("targetless shell: %d %q %q", r.Code, r.Stdout, r.Stderr)
	}
	if left := s.leaks(t, id); len(left) > 0 {
		t.Fatalf("targetless sandbox left: %v", left)
	}
}

// TestExecSeed runs the seed page's curl verbatim (as an HTTP request).
func TestExecSeed(t *testing.T) {
	s := sharedServer(t)
	key := s.account(t, "free")
	code, body := s.do(t, key, "POST", "/v1/exec", `{"command": "echo seed && pwd && echo err >&2 && exit 2"}`)
	if code != 200 {
		t.Fatalf("POST /v1/exec: %d %s", code, body)
	}
	var res api.ExecResult
	decodeJSON(t, body, &res)
	if res.ExitCode != 2 || res.Stdout != "seed\n/workspace\n" || res.Stderr != "err\n" || res.SessionID == "" ||
		res.CommandID == "" || res.WorkspaceID != nil || res.TimedOut {
		t.Fatalf("result = %+v", res)
	}
	for _, field := range []string{"session_id", "workspace_id", "command_id", "exit_code", "stdout", "stderr", "duration_ms", "timed_out"} {
		if !bytes.Contains(body, []byte(`"`+field+`"`)) {
			t.Errorf("answer lacks %q: %s", field, body)
		}
	}
	// The ephemeral sandbox is gone.
	if code, _ := s.do(t, key, "GET", "/v1/sessions/"+res.SessionID, ""); code != 404 {
		t.Fatalf("ephemeral exec sandbox still exists: %d", code)
	}
	if left := s.leaks(t, res.SessionID); len(left) > 0 {
		t.Fatalf("left behind: %v", left)
	}

	// cwd, env, stdin, timeout.
	code, body = s.do(t, key, "POST", "/v1/exec", `{"command":"pwd; echo $FOO; cat","cwd":"/tmp","env":{"FOO":"bar"},"stdin":"in put"}`)
	decodeJSON(t, body, &res)
	if code != 200 || res.Stdout != "/tmp\nbar\nin put" {
		t.Fatalf("cwd/env/stdin: %d %+v", code, res)
	}
	start := time.Now()
	code, body = s.do(t, key, "POST", "/v1/exec", `{"command":"sleep 30 & sleep 30; echo never","timeout_ms":500}`)
	decodeJSON(t, body, &res)
	if code != 200 || !res.TimedOut || res.ExitCode != 137 || strings.Contains(res.Stdout, "never") || time.Since(start) > 20*time.Second {
		t.Fatalf("timeout: %d %+v", code, res)
	}
}

func TestExecInSession(t *testing.T) {
	s := sharedServer(t)
	key := s.account(t, "paid")
	id := s.sandbox(t, key)
	c := s.Client(key)
	ctx := t.Context()

	// State persists between commands of a session.
	if res, err := c.Exec(ctx, id, api.ExecRequest{Command: "echo kept > /workspace/f"}); err != nil || res.ExitCode != 0 {
		t.Fatal(res, err)
	}
	res, err := c.Exec(ctx, id, api.ExecRequest{Command: "ls -la /workspace && cat f", Cwd: "/workspace"})
	if err != nil || !strings.HasSuffix(res.Stdout, "kept\n") {
		t.Fatalf("%+v %v", res, err)
	}

	// A plain command line is exec'd without bash (docs/ARCHITECTURE.md,
	// "Exec"); with a `;` bash runs it and, for one command, execs it
	// itself. Nobody may tell the two apart: status, output, environment
	// (as a set: bash passes it in its own order).
	t.Run("plain like bash", func(t *testing.T) {
		for _, line := range []string{"env", "ls -l /etc/hostname /usr/bin/true", "cat /nonexistent", "id", "printenv PWD SHLVL _ FOO", "true", "echo hi"} {
			for _, user := range []string{"", "nobody"} {
				run := func(command string) api.ExecResult {
					res, err := c.Exec(ctx, id, api.ExecRequest{Command: command, Cwd: "/tmp", User: user, Env: map[string]string{"FOO": "bar"}})
					if err != nil {
						t.Fatalf("%q as %q: %v", command, user, err)
					}
					if line == "env" {
						l := strings.Split(res.Stdout, "\n")
						slices.Sort(l)
						res.Stdout = strings.Join(l, "\n")
					}
					return res
				}
				plain, viaBash := run(line), run(line+";")
				if plain.ExitCode != viaBash.ExitCode || plain.Stdout != viaBash.Stdout || plain.Stderr != viaBash.Stderr {
					t.Errorf("%q as %q:\n plain: %d %q %q\n bash:  %d %q %q", line, user,
						plain.ExitCode, plain.Stdout, plain.Stderr, viaBash.ExitCode, viaBash.Stdout, viaBash.Stderr)
				}
			}
		}
	})

	// The host image sets USER=root: a command run as another user gets
	// that user's name (as su gives it), none for a uid without a name.
	t.Run("USER of the user", func(t *testing.T) {
		for user, want := range map[string]string{"": "root /root", "root": "root /root", "nobody": "nobody /nonexistent", "1234": "- /"} {
			res, err := c.Exec(ctx, id, api.ExecRequest{Command: `echo "${USER--}" "$HOME"`, User: user})
			if err != nil || strings.TrimSpace(res.Stdout) != want {
				t.Errorf("as %q: %+v %v, want %q", user, res, err, want)
			}
		}
	})

	t.Run("stream", func(t *testing.T) {
		var events []api.Event
		exit, err := c.ExecStream(ctx, id, api.ExecRequest{Command: `printf '\377\376\000bin'; echo out; sleep 0.3; echo err >&2`}, func(ev api.Event) error {
			events = append(events, ev)
			return nil
		})
		if err != nil || exit.ExitCode == nil || *exit.ExitCode != 0 {
			t.Fatalf("exit = %+v, %v", exit, err)
		}
		var stdout []byte
		var stderr string
		for _, ev := range events {
			switch ev.Type {
			case "stdout":
				b := []byte(ev.Data)
				if ev.Encoding == "base64" {
					b = decodeB64(t, ev.Data)
				}
				stdout = append(stdout, b...)
			case "stderr":
				stderr += ev.Data
			}
		}
		if !bytes.Equal(stdout, []byte("\xff\xfe\x00binout\n")) || stderr != "err\n" {
			t.Fatalf("stdout %q stderr %q", stdout, stderr)
		}
		// The raw wire format: NDJSON, last line the exit event.
		code, body := s.do(t, key, "POST", "/v1/sessions/"+id+"/exec", `{"command":"echo a; exit 5","stream":true}`)
		lines := strings.Split(strings.TrimSpace(string(body)), "\n")
		if code != 200 || len(lines) != 2 || lines[0] != `{"type":"stdout","data":"a\n"}` || lines[1] != `{"type":"exit","exit_code":5}` {
			t.Fatalf("stream body: %d %q", code, body)
		}
	})

	t.Run("background", func(t *testing.T) {
		code, body := s.do(t, key, "POST", "/v1/sessions/"+id+"/exec", `{"command":"echo start; while read l; do echo got:$l; done; echo eof","background":true}`)
		if code != 202 {
			t.Fatalf("background: %d %s", code, body)
		}
		var started api.BackgroundStarted
		decodeJSON(t, body, &started)
		cid := started.CommandID
		if err := c.Stdin(ctx, id, cid, api.StdinRequest{Data: "one\n"}); err != nil {
			t.Fatal(err)
		}
		if err := c.Stdin(ctx, id, cid, api.StdinRequest{Data: "dHdvCg==", Encoding: "base64", EOF: true}); err != nil {
			t.Fatal(err)
		}
		exit, err := c.Follow(ctx, id, cid, nil)
		if err != nil || exit.ExitCode == nil || *exit.ExitCode != 0 {
			t.Fatalf("follow: %+v %v", exit, err)
		}
		out := outputOf(t, c, id, cid, 0)
		if out != "start\ngot:one\ngot:two\neof\n" {
			t.Fatalf("output = %q", out)
		}
		if out := outputOf(t, c, id, cid, 6); out != "got:one\ngot:two\neof\n" {
			t.Fatalf("output from offset 6 = %q", out)
		}
		cmd, err := c.Command(ctx, id, cid)
		if err != nil || cmd.Status != "exited" || *cmd.ExitCode != 0 || !cmd.Background {
			t.Fatalf("command = %+v %v", cmd, err)
		}
		list, err := c.Commands(ctx, id)
		if err != nil || len(list) == 0 {
			t.Fatalf("commands = %v %v", list, err)
		}
		if err := c.Stdin(ctx, id, cid, api.StdinRequest{Data: "late"}); err == nil {
			t.Fatal("stdin to an exited command succeeded")
		}
	})

	t.Run("signal and follow", func(t *testing.T) {
		cid, err := c.StartBackground(ctx, id, api.ExecRequest{Command: "trap 'echo term; exit 9' TERM; echo up; while :; do sleep 0.1; done"})
		if err != nil {
			t.Fatal(err)
		}
		followed := make(chan string, 1)
		go func() {
			rc, err := c.Output(ctx, id, cid, 0, true)
			if err != nil {
				followed <- err.Error()
				return
			}
			followed <- readAll(t, rc, nil)
		}()
		waitFor(t, func() bool {
			cmd, err := c.Command(ctx, id, cid)
			return err == nil && cmd.OutputSize >= 3
		})
		cmd, _ := c.Command(ctx, id, cid)
		if cmd.Status != "running" || cmd.ExitCode != nil {
			t.Fatalf("running command = %+v", cmd)
		}
		if err := c.Signal(ctx, id, cid, "TERM"); err != nil {
			t.Fatal(err)
		}
		select {
		case out := <-followed:
			// The signal goes to the whole group: bash may also report
			// its sleep as Terminated, before or after the trap's line.
			if !strings.HasPrefix(out, "up\n") || !strings.Contains(out, "term\n") {
				t.Fatalf("followed output = %q", out)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("follow did not end when the command exited")
		}
		cmd, _ = c.Command(ctx, id, cid)
		if cmd.Status != "exited" || *cmd.ExitCode != 9 {
			t.Fatalf("after TERM: %+v", cmd)
		}
	})

	t.Run("disconnect kills foreground command", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			c.ExecStream(cctx, id, api.ExecRequest{Command: "echo $$ > /tmp/fg.pid; sleep 60"}, nil)
			close(done)
		}()
		waitFor(t, func() bool {
			res, err := c.Exec(ctx, id, api.ExecRequest{Command: "test -s /tmp/fg.pid"})
			return err == nil && res.ExitCode == 0
		})
		cancel()
		<-done
		waitFor(t, func() bool {
			res, err := c.Exec(ctx, id, api.ExecRequest{Command: "kill -0 $(cat /tmp/fg.pid) 2>/dev/null"})
			return err == nil && res.ExitCode != 0
		})
	})
}

// TestIsolation checks what a command inside a sandbox can see and do.
func TestIsolation(t *testing.T) {
	s := sharedServer(t)
	key := s.account(t, "free")
	id := s.sandbox(t, key)
	c := s.Client(key)
	run := func(cmd string) api.ExecResult {
		t.Helper()
		res, err := c.Exec(t.Context(), id, api.ExecRequest{Command: cmd})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	checks := []struct {
		name, cmd, want string
	}{
		{"hostname is the session id", "hostname", id + "\n"},
		{"agent is PID 1", "tr '\\0' ' ' < /proc/1/cmdline | cut -d' ' -f1,2", "/.chaser/agent agent\n"},
		{"own pid namespace", "ls /proc | grep -c '^[0-9]' | awk '{print ($1 < 10)}'", "1\n"},
		{"loopback only", "ls /sys/class/net | tr '\\n' ' '; echo", "lo \n"},
		{"no_new_privs", "grep NoNewPrivs /proc/self/status | awk '{print $2}'", "1\n"},
		{"seccomp filter", "grep '^Seccomp:' /proc/self/status | awk '{print $2}'", "2\n"},
		{"no CAP_SYS_ADMIN", "capsh --decode=$(grep CapEff /proc/self/status | awk '{print $2}') 2>/dev/null | grep -c sys_admin || true", "0\n"},
		{"mount refused", "mount -t tmpfs none /mnt 2>/dev/null && echo mounted || echo refused", "refused\n"},
		{"no shadow file", "test -e /etc/shadow && echo present || echo absent", "absent\n"},
		{"no host ssh keys", "ls /etc/ssh 2>/dev/null | wc -l", "0\n"},
		{"host root invisible", "test -e " + s.DataDir + " && echo visible || echo invisible", "invisible\n"},
		{"memory limit", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes", fmt.Sprint(512<<20) + "\n"},
		{"pids limit", "cat /sys/fs/cgroup/pids/pids.max", "256\n"},
		{"cpu limit", "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us", "100000\n"},
		{"chaser markers", "echo $CHASER:$CHASER_SESSION_ID:${CHASER_WORKSPACE_ID-unset}", "1:" + id + ":\n"},
	}
	for _, ch := range checks {
		if got := run(ch.cmd); got.Stdout != ch.want {
			t.Errorf("%s: %q gave %q (stderr %q), want %q", ch.name, ch.cmd, got.Stdout, got.Stderr, ch.want)
		}
	}
	// The agent is the small chaser-agent shipped beside chaser.
	if fi, err := statHost(filepath.Join(filepath.Dir(binary), "chaser-agent")); err != nil {
		t.Fatal(err)
	} else if res := run("stat -c %s /.chaser/agent"); res.Stdout != fmt.Sprint(fi.Size())+"\n" {
		t.Errorf("the sandbox's agent is %q bytes, chaser-agent %d", res.Stdout, fi.Size())
	}
	// Writes to the host image stay in the sandbox.
	if res := run("echo x > /usr/chaser-probe && cat /usr/chaser-probe"); res.Stdout != "x\n" {
		t.Fatalf("write to /usr inside: %+v", res)
	}
	if _, err := readFileHost("/usr/chaser-probe"); err == nil {
		t.Fatal("a write to /usr in the sandbox reached the host")
	}
	// Another sandbox does not see the first one's files.
	other := s.sandbox(t, key)
	res, _ := c.Exec(t.Context(), other, api.ExecRequest{Command: "test -e /usr/chaser-probe && echo shared || echo separate"})
	if res.Stdout != "separate\n" {
		t.Fatalf("second sandbox sees the first one's files: %q", res.Stdout)
	}
}

// TestSeccompByAgent checks runc sandboxes made after the server read the
// compiled seccomp filter (internal/runtime/oci, seccomp_linux.go): runc
// gets no profile, the agent installs the filter on all its threads
// before it serves, and commands run filtered (unshare of a user
// namespace refused, as Docker's profile does without CAP_SYS_ADMIN).
func TestSeccompByAgent(t *testing.T) {
	if testRuntime != "runc" {
		t.Fatalf("runs under runc only (runsc filters with the profile itself); CHASER_TEST_RUNTIME=%s", testRuntime)
	}
	s := sharedServer(t)
	key := s.account(t, "free")
	c := s.Client(key)
	var id string
	var cfg struct {
		Process struct{ Args []string }
		Linux   struct{ Seccomp *json.RawMessage }
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		id = s.sandbox(t, key)
		b, err := os.ReadFile(filepath.Join(s.stateDir(id), "config.json"))
		if err != nil {
			t.Fatal(err)
		}
		decodeJSON(t, b, &cfg)
		if cfg.Linux.Seccomp == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sandboxes still get the profile through runc 30 s on; server log:\n%s", s.Log())
		}
		c.DeleteSession(t.Context(), id)
		time.Sleep(100 * time.Millisecond)
	}
	if got := strings.Join(cfg.Process.Args, " "); got != "/.chaser/agent agent --seccomp-fd 4" {
		t.Fatalf("agent args %q", got)
	}
	res, err := c.Exec(t.Context(), id, api.ExecRequest{Command: "grep ^Seccomp /proc/self/status; unshare -U true 2>/dev/null && echo unshared || echo refused; ls /proc/self/fd | wc -l"})
	if err != nil {
		t.Fatal(err)
	}
	// fds: 0, 1, 2 and ls's own directory; the filter's pipe is not
	// passed on.
	if res.Stdout != "Seccomp:\t2\nSeccomp_filters:\t1\nrefused\n4\n" {
		t.Fatalf("in the sandbox: %q (stderr %q)", res.Stdout, res.Stderr)
	}
	pidB, err := os.ReadFile(filepath.Join(s.stateDir(id), "pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(pidB)))
	if err != nil {
		t.Fatal(err)
	}
	runtimetest.AllThreadsFiltered(t, pid)
	if !strings.Contains(s.Log(), "seccomp filter read from a probe sandbox") {
		t.Fatal("the server did not log reading the filter")
	}
}

// TestBadInput checks that bad requests get clear 4xx JSON errors and
// change nothing.
func TestBadInput(t *testing.T) {
	s := sharedServer(t)
	key := s.account(t, "free")
	other := s.account(t, "free")
	id := s.sandbox(t, key)

	cases := []struct {
		name, key, method, path, body string
		status                        int
		code                          string
	}{
		{"no key", "", "GET", "/v1/sessions", "", 401, "unauthenticated"},
		{"bad key", "chaser_nope_nope", "GET", "/v1/sessions", "", 401, "unauthenticated"},
		{"garbage key", "garbage", "POST", "/v1/exec", `{"command":"true"}`, 401, "unauthenticated"},
		{"other account's session", other, "GET", "/v1/sessions/" + id, "", 404, "not_found"},
		{"other account's exec", other, "POST", "/v1/sessions/" + id + "/exec", `{"command":"true"}`, 404, "not_found"},
		{"other account's delete", other, "DELETE", "/v1/sessions/" + id, "", 404, "not_found"},
		{"other account's commands", other, "GET", "/v1/sessions/" + id + "/commands", "", 404, "not_found"},
		{"unknown session", key, "GET", "/v1/sessions/s-doesnotexist", "", 404, "not_found"},
		{"unknown command", key, "GET", "/v1/sessions/" + id + "/commands/c-nope", "", 404, "not_found"},
		{"unknown command output", key, "GET", "/v1/sessions/" + id + "/commands/c-nope/output", "", 404, "not_found"},
		{"unknown command signal", key, "POST", "/v1/sessions/" + id + "/commands/c-nope/signal", `{"signal":"TERM"}`, 404, "not_found"},
		{"malformed json", key, "POST", "/v1/sessions", `{"type":`, 400, "invalid_argument"},
		{"wrong type", key, "POST", "/v1/exec", `{"command":42}`, 400, "invalid_argument"},
		{"unknown field", key, "POST", "/v1/sessions", `{"type":"sandbox","color":"red"}`, 400, "invalid_argument"},
		{"empty body", key, "POST", "/v1/exec", ``, 400, "invalid_argument"},
		{"empty command", key, "POST", "/v1/sessions/" + id + "/exec", `{"command":"  "}`, 400, "invalid_argument"},
		{"relative cwd", key, "POST", "/v1/sessions/" + id + "/exec", `{"command":"true","cwd":"tmp"}`, 400, "invalid_argument"},
		{"missing cwd", key, "POST", "/v1/sessions/" + id + "/exec", `{"command":"true","cwd":"/nope"}`, 400, "invalid_argument"},
		{"negative timeout", key, "POST", "/v1/sessions/" + id + "/exec", `{"command":"true","timeout_ms":-1}`, 400, "invalid_argument"},
		{"bad env name", key, "POST", "/v1/sessions/" + id + "/exec", `{"command":"true","env":{"A=B":"c"}}`, 400, "invalid_argument"},
		{"workspace on a session", key, "POST", "/v1/sessions/" + id + "/exec", `{"command":"true","workspace":"dev"}`, 400, "invalid_argument"},
		{"background and stream", key, "POST", "/v1/sessions/" + id + "/exec", `{"command":"true","background":true,"stream":true}`, 400, "invalid_argument"},
		{"unknown session type", key, "POST", "/v1/sessions", `{"type":"vm"}`, 400, "invalid_argument"},
		{"workspace with image", key, "POST", "/v1/sessions", `{"type":"sandbox","workspace":"dev","image":"x"}`, 400, "invalid_argument"},
		{"bad output offset", key, "GET", "/v1/sessions/" + id + "/commands/c-x/output?offset=-3", "", 400, "invalid_argument"},
		{"oversized body", key, "POST", "/v1/exec", `{"command":"` + strings.Repeat("x", 2<<20) + `"}`, 413, "too_large"},
		{"not admin", key, "POST", "/v1/accounts", `{"name":"x","tier":"paid"}`, 403, "permission_denied"},
		{"unknown route", key, "GET", "/v1/nothing", "", 404, "not_found"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, body := s.do(t, c.key, c.method, c.path, c.body)
			expectError(t, status, body, c.status, c.code)
		})
	}

	// Bad signal to a real command.
	cid, err := s.Client(key).StartBackground(t.Context(), id, api.ExecRequest{Command: "sleep 30"})
	if err != nil {
		t.Fatal(err)
	}
	status, body := s.do(t, key, "POST", "/v1/sessions/"+id+"/commands/"+cid+"/signal", `{"signal":"SIGBOGUS"}`)
	expectError(t, status, body, 400, "invalid_argument")

	// Nothing changed: still one session, and it still works.
	list, err := s.Client(key).ListSessions(t.Context())
	if err != nil || len(list) != 1 {
		t.Fatalf("sessions after bad input: %v %v", list, err)
	}
	if list, _ := s.Client(other).ListSessions(t.Context()); len(list) != 0 {
		t.Fatalf("other account sees sessions: %v", list)
	}
	res, err := s.Client(key).Exec(t.Context(), id, api.ExecRequest{Command: "echo alive"})
	if err != nil || res.Stdout != "alive\n" {
		t.Fatalf("session after bad input: %+v %v", res, err)
	}
}

// TestTierLimit checks the free tier's concurrent sandbox limit (429).
func TestTierLimit(t *testing.T) {
	s := sharedServer(t)
	key := s.account(t, "free")
	for i := 0; i < 3; i++ {
		s.sandbox(t, key)
	}
	status, body := s.do(t, key, "POST", "/v1/sessions", `{"type":"sandbox","ephemeral":true}`)
	expectError(t, status, body, 429, "resource_exhausted")
}

// TestAccountsCLI checks `chaser accounts create` and the key it prints.
func TestAccountsCLI(t *testing.T) {
	s := sharedServer(t)
	r := s.cli(t, s.AdminKey, nil, "accounts", "create", "--name", fmt.Sprintf("cli-%d", time.Now().UnixNano()), "--tier", "free", "--json")
	if r.Code != 0 {
		t.Fatalf("accounts create: %s", r.Stderr)
	}
	var a api.Account
	decodeJSON(t, []byte(r.Stdout), &a)
	if a.ID == "" || a.Tier != "free" || !strings.HasPrefix(a.APIKey, "chaser_") {
		t.Fatalf("account = %s", r.Stdout)
	}
	if code, _ := s.do(t, a.APIKey, "GET", "/v1/sessions", ""); code != 200 {
		t.Fatalf("new key: %d", code)
	}
	// The key file of the admin is private.
	if fi, err := statHost(s.DataDir + "/admin.key"); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin.key: %v %v", fi, err)
	}
	// Keys are stored hashed: the secret is nowhere in the database.
	secret := a.APIKey[strings.LastIndex(a.APIKey, "_")+1:]
	for _, f := range []string{"chaser.db", "chaser.db-wal"} {
		if b, err := readFileHost(s.DataDir + "/" + f); err == nil && bytes.Contains(b, []byte(secret)) {
			t.Fatalf("%s holds the key's secret in clear", f)
		}
	}
}

// TestRestart kills the server (SIGKILL), restarts it on the same data dir,
// and checks the running sandbox is found again; then a graceful stop
// destroys every sandbox and leaves nothing behind.
func TestRestart(t *testing.T) {
	s := newServer(t)
	key := s.account(t, "paid")
	c := s.Client(key)
	sess, err := c.CreateSession(t.Context(), api.CreateSessionRequest{Type: "sandbox", Ephemeral: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(t.Context(), sess.ID, api.ExecRequest{Command: "echo before > /workspace/state"}); err != nil {
		t.Fatal(err)
	}
	s.kill()

	s2 := startServer(t, s.DataDir)
	defer s2.stop()
	c = s2.Client(key)
	res, err := c.Exec(t.Context(), sess.ID, api.ExecRequest{Command: "cat /workspace/state"})
	if err != nil || res.Stdout != "before\n" {
		t.Fatalf("after SIGKILL and restart: %+v %v\n%s", res, err, s2.Log())
	}
	if err := s2.stop(); err != nil {
		t.Fatalf("graceful stop: %v\n%s", err, s2.Log())
	}
	if left := s2.leaks(t, sess.ID); len(left) > 0 {
		t.Fatalf("left after graceful stop: %v", left)
	}
	if m := hostMounts(t, s.DataDir); len(m) > 0 {
		t.Fatalf("mounts left under the data dir: %v", m)
	}
	if l := loopDevices(t, s.DataDir); len(l) > 0 {
		t.Fatalf("loop devices left backed by the data dir: %v", l)
	}
	if cgs, _ := filepath.Glob("/sys/fs/cgroup/*/" + daemon.CgroupParent(s.DataDir)); len(cgs) > 0 {
		t.Fatalf("cgroup parents left after graceful stop: %v", cgs)
	}
}

func decodeB64(t *testing.T, s string) []byte {
	t.Helper()
	var b []byte
	if err := json.Unmarshal([]byte(`"`+s+`"`), &b); err != nil {
		t.Fatal(err)
	}
	return b
}

// outputOf returns a command's combined output from offset off.
func outputOf(t *testing.T, c *client.Client, id, cid string, off int64) string {
	t.Helper()
	rc, err := c.Output(t.Context(), id, cid, off, false)
	return readAll(t, rc, err)
}

func readAll(t *testing.T, rc io.ReadCloser, err error) string {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	return string(b)
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 20s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestHealthAndMetrics checks the unauthenticated operator endpoints.
func TestHealthAndMetrics(t *testing.T) {
	s := sharedServer(t)
	key := s.account(t, "free")
	s.sandbox(t, key)
	code, body := s.do(t, "", "GET", "/healthz", "")
	if code != 200 || !strings.Contains(string(body), `"status":"ok"`) {
		t.Fatalf("healthz: %d %s", code, body)
	}
	code, body = s.do(t, s.AdminKey, "GET", "/metrics", "")
	if code != 200 {
		t.Fatalf("metrics: %d", code)
	}
	for _, want := range []string{"chaser_sandboxes_running ", "chaser_sandbox_create_seconds_count ", `chaser_http_requests_total{code="201",route="POST /v1/sessions"}`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// TestIdleReaping checks that an unused session ends after the idle timeout
// while one running a command, and one with an open terminal, stay.
func TestIdleReaping(t *testing.T) {
	s := newServer(t, "--idle-timeout", "1s", "--reap-interval", "200ms")
	key := s.account(t, "free")
	c := s.Client(key)
	idle := s.sandbox(t, key)
	busy := s.sandbox(t, key)
	if _, err := c.StartBackground(t.Context(), busy, api.ExecRequest{Command: "sleep 60"}); err != nil {
		t.Fatal(err)
	}
	typing := s.sandbox(t, key)
	pty, err := c.DialPTY(t.Context(), typing, client.PTYOptions{Mode: "agent"})
	if err != nil {
		t.Fatal(err)
	}
	defer pty.Close()
	if sess := s.waitEnded(t, key, idle, 20*time.Second); sess.Status != api.StatusStopped || sess.Reason != api.ReasonIdle {
		t.Fatalf("idle session ended as %+v, want stopped / idle", sess)
	}
	if left := s.leaks(t, idle); len(left) > 0 {
		t.Fatalf("idle session left: %v", left)
	}
	if sess, err := c.GetSession(t.Context(), busy); err != nil || sess.Status != api.StatusRunning {
		t.Fatalf("session running a command was reaped: %+v %v", sess, err)
	}
	if sess, err := c.GetSession(t.Context(), typing); err != nil || sess.Status != api.StatusRunning {
		t.Fatalf("session with an open terminal was reaped: %+v %v", sess, err)
	}
}

// TestDeadSandboxReleased kills a sandbox's init behind the server's back
// (as the OOM killer could) and checks the session and everything it held
// are released.
func TestDeadSandboxReleased(t *testing.T) {
	s := newServer(t, "--health-interval", "200ms")
	key := s.account(t, "free")
	id := s.sandbox(t, key)
	if out, err := exec.Command("kill", "-9", s.agentPID(t, id)).CombinedOutput(); err != nil {
		t.Fatalf("kill: %v %s", err, out)
	}
	if sess := s.waitEnded(t, key, id, 20*time.Second); sess.Status != api.StatusFailed || sess.Reason != api.ReasonDied {
		t.Fatalf("dead session ended as %+v, want failed / died", sess)
	}
	waitFor(t, func() bool { return len(s.leaks(t, id)) == 0 })
}
