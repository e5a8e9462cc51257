package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/client"
	"github.com/chaserhq/chaser/internal/errdefs"
)

// ptyWS is a raw WebSocket client of the PTY endpoint, speaking the frames
// the way any client would (no typed client), so the wire format is what
// is tested.
type ptyWS struct {
	t    *testing.T
	c    *websocket.Conn
	open api.PTYMessage
	got  int64
	// agentLog is the end of the sandbox agent's log (its stderr on the
	// host), for failures: it is gone once the test's cleanup deletes the
	// session.
	agentLog func() string
}

func (s *Server) wsURL(id string, q url.Values) string {
	return "ws://" + s.Addr + "/v1/sessions/" + id + "/pty?" + q.Encode()
}

// dialWS opens the PTY WebSocket; key goes in the header unless empty.
func (s *Server) dialWS(t *testing.T, key, id string, q url.Values) *ptyWS {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	h := http.Header{}
	if key != "" {
		h.Set("Authorization", "Bearer "+key)
	}
	c, resp, err := websocket.Dial(ctx, s.wsURL(id, q), &websocket.DialOptions{HTTPHeader: h})
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial pty %v: %d %v", q, status, err)
	}
	c.SetReadLimit(16 << 20)
	t.Cleanup(func() { c.CloseNow() })
	w := &ptyWS{t: t, c: c, agentLog: func() string {
		b, _ := os.ReadFile(filepath.Join(s.stateDir(id), "agent.log"))
		return tail(string(b), 4<<10)
	}}
	typ, data, err := c.Read(ctx)
	if err != nil || typ != websocket.MessageText {
		t.Fatalf("first frame: %v %v", typ, err)
	}
	if err := json.Unmarshal(data, &w.open); err != nil || w.open.Type != "open" || w.open.PTYID == "" || w.open.Offset == nil {
		t.Fatalf("first frame %s is not an open message", data)
	}
	return w
}

func (w *ptyWS) text(s string) {
	w.t.Helper()
	if err := w.c.Write(w.t.Context(), websocket.MessageText, []byte(s)); err != nil {
		w.t.Fatal(err)
	}
}

func (w *ptyWS) keys(s string) {
	w.t.Helper()
	if err := w.c.Write(w.t.Context(), websocket.MessageBinary, []byte(s)); err != nil {
		w.t.Fatal(err)
	}
}

func (w *ptyWS) run(cmd string) {
	b, _ := json.Marshal(map[string]string{"type": "run", "command": cmd})
	w.text(string(b))
}

// until reads until a control message of type typ; it returns the terminal
// bytes before it and the message.
func (w *ptyWS) until(typ string) (string, api.PTYMessage) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(w.t.Context(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	for {
		mt, data, err := w.c.Read(ctx)
		if err != nil {
			w.t.Fatalf("waiting for %q: %v (output so far %q)", typ, err, out.String())
		}
		w.got += int64(len(data))
		if mt == websocket.MessageBinary {
			out.Write(data)
			continue
		}
		var m api.PTYMessage
		if err := json.Unmarshal(data, &m); err != nil {
			w.t.Fatalf("control frame %q is not JSON", data)
		}
		if m.Type == typ {
			return out.String(), m
		}
		if m.Type == "error" {
			w.t.Fatalf("error frame waiting for %q: %s", typ, data)
		}
	}
}

// untilOutput reads terminal bytes until they contain want.
func (w *ptyWS) untilOutput(want string) string {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(w.t.Context(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	for !strings.Contains(out.String(), want) {
		mt, data, err := w.c.Read(ctx)
		if err != nil {
			w.t.Fatalf("waiting for %q: %v (output so far %q); the agent's log:\n%s", want, err, out.String(), w.agentLog())
		}
		w.got += int64(len(data))
		if mt == websocket.MessageBinary {
			out.Write(data)
		}
	}
	return out.String()
}

func TestPTYHumanMode(t *testing.T) {
	s := sharedServer(t)
	key := s.account(t, "free")
	id := s.sandbox(t, key)
	w := s.dialWS(t, key, id, url.Values{"cols": {"101"}, "rows": {"33"}})
	if w.open.Mode != "human" {
		t.Fatalf("default mode %q", w.open.Mode)
	}
	w.untilOutput("#") // root's prompt
	w.keys("stty size; echo $TERM; tty; pwd; echo $((6*7))\r")
	out := w.untilOutput("42\r\n")
	for _, want := range []string{"33 101", "xterm-256color", "/dev/pts/", "/workspace"} {
		if !strings.Contains(out, want) {
			t.Errorf("output %q lacks %q", out, want)
		}
	}
	w.text(`{"type":"resize","cols":120,"rows":40}`)
	w.keys("stty size\r")
	w.untilOutput("40 120")

	// Ctrl-C reaches the foreground job; the shell survives it.
	// The quotes keep the typed line's echo from matching the output.
	w.keys("echo sl''eeping; sleep 100\r")
	w.untilOutput("sleeping\r\n")
	time.Sleep(200 * time.Millisecond)
	w.keys("\x03")
	w.keys("echo rc=$?\r")
	w.untilOutput("rc=130")

	w.keys("exit 3\r")
	_, exit := w.until("exit")
	if exit.Code == nil || *exit.Code != 3 {
		t.Fatalf("exit %+v, want code 3", exit)
	}
	if _, _, err := w.c.Read(t.Context()); websocket.CloseStatus(err) != websocket.StatusNormalClosure {
		t.Fatalf("after exit: %v, want a normal close", err)
	}
}

func TestPTYAgentMode(t *testing.T) {
	s := sharedServer(t)
	key := s.account(t, "free")
	id := s.sandbox(t, key)
	w := s.dialWS(t, key, id, url.Values{"mode": {"agent"}})
	for _, st := range []struct {
		cmd, out, cwd string
		code          int
	}{
		{"cd /tmp && export GREETING=hello && mkdir -p d", "", "/tmp", 0},
		{"cd d; echo $GREETING from $(pwd)", "hello from /tmp/d\n", "/tmp/d", 0},
		{"greet() { echo \"hi $1\"; }; greet you", "hi you\n", "/tmp/d", 0},
		{"greet again; ls --color=always /nonexistent-dir; echo $TERM", "hi again\nls: cannot access '/nonexistent-dir': No such file or directory\ndumb\n", "/tmp/d", 0},
		{"echo $CHASER:$CHASER_SESSION_ID", "1:" + id + "\n", "/tmp/d", 0},
		{"printf '\\033[1;32mgreen\\033[0m'; exit_code() { return 9; }; exit_code", "green", "/tmp/d", 9},
		{"echo 'unterminated", "", "/tmp/d", 2},
	} {
		w.run(st.cmd)
		out, done := w.until("done")
		if st.code == 2 {
			if !strings.Contains(out, "unexpected EOF") && !strings.Contains(out, "syntax error") {
				t.Errorf("%q: output %q has no syntax error", st.cmd, out)
			}
		} else if out != st.out {
			t.Errorf("%q: output %q, want %q", st.cmd, out, st.out)
		}
		if done.ExitCode == nil || *done.ExitCode != st.code || done.Cwd != st.cwd {
			t.Errorf("%q: done %+v, want exit %d cwd %s", st.cmd, done, st.code, st.cwd)
		}
	}
	// Commands queue in order.
	for i := range 3 {
		w.run("sleep 0.1; echo " + strconv.Itoa(i))
	}
	for i := range 3 {
		if out, _ := w.until("done"); out != strconv.Itoa(i)+"\n" {
			t.Fatalf("queued command %d printed %q", i, out)
		}
	}
}

func TestPTYExecModeWithQueryToken(t *testing.T) {
	s := sharedServer(t)
	key := s.account(t, "free")
	id := s.sandbox(t, key)
	// No header: the key comes as ?token= (browsers cannot set headers).
	w := s.dialWS(t, "", id, url.Values{"mode": {"exec"}, "command": {"test -t 0 && echo on-a-tty; exit 42"}, "token": {key}})
	out, exit := w.until("exit")
	if !strings.Contains(out, "on-a-tty") || exit.Code == nil || *exit.Code != 42 {
		t.Fatalf("exec: output %q exit %+v", out, exit)
	}
	if strings.Contains(s.Log(), key) {
		t.Fatal("the server logged the API key from ?token=")
	}
}

func TestPTYReconnectReplaysMissedOutput(t *testing.T) {
	s := sharedServer(t)
	key := s.account(t, "free")
	id := s.sandbox(t, key)
	c := s.Client(key)
	p, err := c.DialPTY(t.Context(), id, client.PTYOptions{Mode: api.PTYModeAgent})
	if err != nil {
		t.Fatal(err)
	}
	if out, _, err := p.RunCommand(t.Context(), "X=kept; echo first"); err != nil || string(out) != "first\n" {
		t.Fatalf("first: %q %v", out, err)
	}
	// Start a command, then drop the connection before its output comes.
	if err := p.Run(t.Context(), "late", "sleep 1; echo while-away-$X"); err != nil {
		t.Fatal(err)
	}
	resume := p.Resume()
	p.CloseNow()
	time.Sleep(2 * time.Second)

	p2, err := c.DialPTY(t.Context(), id, client.PTYOptions{PTYID: p.ID, Offset: resume, Resume: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p2.CloseNow()
	var out bytes.Buffer
	for {
		data, m, err := p2.Next(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		out.Write(data)
		if m != nil && m.Type == api.PTYDone {
			if m.ID != "late" || out.String() != "while-away-kept\n" {
				t.Fatalf("replayed %q then %+v", out.String(), m)
			}
			break
		}
	}
	// The shell's state survived the reconnect too.
	if out, _, err := p2.RunCommand(t.Context(), "echo $X"); err != nil || string(out) != "kept\n" {
		t.Fatalf("after reconnect: %q %v", out, err)
	}
	// An unknown terminal is a clear 404.
	_, err = c.DialPTY(t.Context(), id, client.PTYOptions{PTYID: "p-0000"})
	if !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("unknown pty_id: %v", err)
	}
}

func TestPTYBadInput(t *testing.T) {
	s := sharedServer(t)
	key := s.account(t, "free")
	other := s.account(t, "free")
	id := s.sandbox(t, key)

	// Before the upgrade: plain JSON errors with their status.
	for _, tc := range []struct {
		name, key, query string
		status           int
		code             string
	}{
		{"unknown mode", key, "mode=telepathy", 400, "invalid_argument"},
		{"exec without command", key, "mode=exec", 400, "invalid_argument"},
		{"command in human mode", key, "command=id", 400, "invalid_argument"},
		{"zero cols", key, "cols=0", 400, "invalid_argument"},
		{"absurd rows", key, "rows=100000", 400, "invalid_argument"},
		{"relative cwd", key, "cwd=tmp", 400, "invalid_argument"},
		{"missing cwd", key, "cwd=/no/such/dir", 400, "invalid_argument"},
		{"unknown pty_id", key, "pty_id=p-123", 404, "not_found"},
		{"no key", "", "", 401, "unauthenticated"},
		{"bad token", "", "token=nope", 401, "unauthenticated"},
		{"other account", other, "", 404, "not_found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, _ := url.ParseQuery(tc.query)
			h := http.Header{}
			if tc.key != "" {
				h.Set("Authorization", "Bearer "+tc.key)
			}
			_, resp, err := websocket.Dial(t.Context(), s.wsURL(id, q), &websocket.DialOptions{HTTPHeader: h})
			if err == nil || resp == nil {
				t.Fatalf("upgraded or no answer: %v", err)
			}
			var body bytes.Buffer
			body.ReadFrom(resp.Body)
			expectError(t, resp.StatusCode, body.Bytes(), tc.status, tc.code)
		})
	}
	t.Run("not a websocket", func(t *testing.T) {
		st, body := s.do(t, key, "GET", "/v1/sessions/"+id+"/pty", "")
		expectError(t, st, body, 400, "invalid_argument")
	})

	// After the upgrade: a JSON error frame, then a close; the terminal
	// and the server live on.
	for _, tc := range []struct{ name, frame, want string }{
		{"malformed json", `{"type":`, "not a JSON object"},
		{"no type", `{"cols":10}`, `no "type"`},
		{"unknown type", `{"type":"teleport"}`, "unknown control type"},
		{"resize to zero", `{"type":"resize","cols":0,"rows":0}`, "out of range"},
		{"absurd resize", `{"type":"resize","cols":99999,"rows":50}`, "out of range"},
		{"run outside agent mode", `{"type":"run","command":"id"}`, "only for mode=agent"},
		{"run without command", `{"type":"run"}`, "non-empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := url.Values{}
			if strings.Contains(tc.name, "without command") {
				q.Set("mode", "agent")
			}
			w := s.dialWS(t, key, id, q)
			w.text(tc.frame)
			_, m := w.until("error")
			if m.Error != "invalid_argument" || !strings.Contains(m.Message, tc.want) {
				t.Fatalf("error frame %+v, want %q", m, tc.want)
			}
			if _, _, err := w.c.Read(t.Context()); websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
				t.Fatalf("after the error frame: %v, want close 1008", err)
			}
		})
	}

	// Still serving: a fresh terminal works.
	w := s.dialWS(t, key, id, url.Values{"mode": {"exec"}, "command": {"echo still-here"}})
	if out, _ := w.until("exit"); !strings.Contains(out, "still-here") {
		t.Fatalf("after bad input: %q", out)
	}
}

func TestSelfTest(t *testing.T) {
	s := sharedServer(t)
	key := s.account(t, "free")
	other := s.account(t, "free")
	id := s.sandbox(t, key)

	st, body := s.do(t, key, "POST", "/v1/sessions/"+id+"/self-test", "")
	if st != 200 {
		t.Fatalf("self-test: %d %s", st, body)
	}
	var res api.SelfTest
	decodeJSON(t, body, &res)
	wantPlatform := map[string]string{"runsc": "systrap"}[testRuntime]
	if res.Runtime != testRuntime || res.Platform != wantPlatform {
		t.Fatalf("self-test runtime = %q platform %q, want %q %q", res.Runtime, res.Platform, testRuntime, wantPlatform)
	}
	if res.SessionID != id || res.Cwd != "/workspace" || res.Kernel == "" || res.OS.Name == "" {
		t.Fatalf("self-test basics: %+v", res)
	}
	if res.Env["CHASER"] != "1" || res.Env["CHASER_SESSION_ID"] != id {
		t.Fatalf("markers: %v", res.Env)
	}
	if _, ok := res.Env["CHASER_WORKSPACE_ID"]; !ok {
		t.Fatalf("CHASER_WORKSPACE_ID is not set: %v", res.Env)
	}
	// Under runsc, whose cgroup view shows no limits, the server reports
	// those the host enforces.
	if res.Limits.MemoryBytes != 512<<20 || res.Limits.Pids != 256 || res.Limits.CPUs != 1 {
		t.Fatalf("limits seen inside: %+v (free tier: 512 MiB, 256 pids, 1 CPU)", res.Limits)
	}
	if len(res.Path) == 0 {
		t.Fatal("no PATH entries")
	}
	tools := map[string]api.Tool{}
	for _, tool := range res.Tools {
		tools[tool.Name] = tool
	}
	// Every tool the issue names is reported, found or absent.
	for _, name := range []string{"node", "npm", "python3", "pip", "git", "go", "gcc", "make", "curl", "bash"} {
		if _, ok := tools[name]; !ok {
			t.Errorf("tool %s not reported", name)
		}
	}
	// The host image has these (the test machine's /usr); versions are
	// what the tools themselves print.
	for name, want := range map[string]string{"bash": "GNU bash", "git": "git version", "gcc": "gcc", "make": "GNU Make", "curl": "curl", "node": "v"} {
		tool := tools[name]
		if !tool.Found || !strings.Contains(tool.Version, want) {
			t.Errorf("%s: %+v, want found with version containing %q", name, tool, want)
		}
	}
	// rustc lives in the host's /root/.cargo, which sandboxes never see.
	if r := tools["rustc"]; r.Found || r.Error == "" {
		t.Errorf("rustc: %+v, want absent with a reason", r)
	}
	if !strings.Contains(res.Shell.Version, "bash") {
		t.Errorf("shell: %+v", res.Shell)
	}

	st, body = s.do(t, other, "POST", "/v1/sessions/"+id+"/self-test", "")
	expectError(t, st, body, 404, "not_found")

	r := s.cli(t, key, nil, "sessions", "self-test", id, "--json")
	var viaCLI api.SelfTest
	if r.Code != 0 {
		t.Fatalf("cli --json: %d %s", r.Code, r.Stderr)
	}
	decodeJSON(t, []byte(r.Stdout), &viaCLI)
	if viaCLI.SessionID != id || len(viaCLI.Tools) != len(res.Tools) {
		t.Fatalf("cli --json: %+v", viaCLI)
	}
	r = s.cli(t, key, nil, "sessions", "self-test", id)
	wantRuntime := "runtime   runc\n"
	if testRuntime == "runsc" {
		wantRuntime = "runtime   runsc (platform systrap)\n"
	}
	for _, want := range []string{wantRuntime, "CHASER=1", "CHASER_SESSION_ID=" + id, "tools", "GNU bash", "rustc", "absent"} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("human output lacks %q:\n%s", want, r.Stdout)
		}
	}
}

// tmux drives a real terminal: the way a person uses `chaser shell`.
type tmux struct {
	t      *testing.T
	socket string
	name   string
}

func newTmux(t *testing.T, cols, rows int, cmd string) *tmux {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Fatal("tmux is not installed: apt-get install -y tmux")
	}
	tm := &tmux{t: t, socket: "chaser-it-" + strconv.FormatInt(time.Now().UnixNano(), 36), name: "sh"}
	tm.run("new-session", "-d", "-s", tm.name, "-x", strconv.Itoa(cols), "-y", strconv.Itoa(rows), cmd)
	t.Cleanup(func() { exec.Command("tmux", "-L", tm.socket, "kill-server").Run() })
	return tm
}

func (tm *tmux) run(args ...string) string {
	tm.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-L", tm.socket}, args...)...).CombinedOutput()
	if err != nil {
		tm.t.Fatalf("tmux %v: %v: %s", args, err, out)
	}
	return string(out)
}

func (tm *tmux) send(keys ...string) {
	tm.run(append([]string{"send-keys", "-t", tm.name}, keys...)...)
}

func (tm *tmux) screen() string { return tm.run("capture-pane", "-p", "-t", tm.name) }

// waitFor polls the screen until it contains want.
func (tm *tmux) waitFor(want string) string {
	tm.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		sc := tm.screen()
		if strings.Contains(sc, want) {
			return sc
		}
		if time.Now().After(deadline) {
			tm.t.Fatalf("screen never showed %q:\n%s", want, sc)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestShellInTmux(t *testing.T) {
	s := sharedServer(t)
	key := s.account(t, "free")
	id := s.sandbox(t, key)
	env := "CHASER_API_URL=" + s.URL + " CHASER_API_KEY=" + key
	// The outer shell prints the CLI's exit code and whether the local
	// terminal is back in cooked mode with echo, then stays for capture.
	tm := newTmux(t, 100, 30, "env "+env+" "+binary+" shell "+id+"; echo CLI-EXIT=$?; "+
		"stty -a | grep -q ' icanon ' && stty -a | grep -q ' echo ' && echo TTY-RESTORED; sleep 600")
	tm.waitFor("#")
	tm.send("stty size; echo $CHASER_SESSION_ID", "Enter")
	tm.waitFor("30 100")
	tm.waitFor(id)

	tm.run("resize-window", "-t", tm.name, "-x", "120", "-y", "40")
	time.Sleep(300 * time.Millisecond)
	tm.send("clear; stty size", "Enter")
	tm.waitFor("40 120")

	// Ctrl-C interrupts the remote foreground command, not the CLI.
	tm.send("echo sl''eeping; sleep 100", "Enter")
	tm.waitFor("\nsleeping")
	time.Sleep(200 * time.Millisecond)
	tm.send("C-c")
	tm.send("echo after-$?", "Enter")
	tm.waitFor("after-130")

	// Ctrl-Z stops it: job control works in the remote shell.
	tm.send("echo sus''pending; sleep 50", "Enter")
	tm.waitFor("\nsuspending")
	time.Sleep(200 * time.Millisecond)
	tm.send("C-z")
	tm.waitFor("Stopped")
	tm.send("kill -9 %1; jobs; echo jobs-done", "Enter")
	tm.waitFor("\njobs-done")

	tm.send("exit 7", "Enter")
	tm.waitFor("CLI-EXIT=7")
	tm.waitFor("TTY-RESTORED")
}

func TestShellInTmuxEphemeral(t *testing.T) {
	s := sharedServer(t)
	key := s.account(t, "free")
	env := "CHASER_API_URL=" + s.URL + " CHASER_API_KEY=" + key
	tm := newTmux(t, 90, 25, "env "+env+" "+binary+" shell; echo CLI-EXIT=$?; sleep 600")
	tm.waitFor("#")
	list, err := s.Client(key).ListSessions(t.Context())
	if err != nil || len(list) != 1 || !list[0].Ephemeral {
		t.Fatalf("sessions while the shell runs: %+v %v", list, err)
	}
	eph := list[0].ID
	// Ctrl-D at the prompt ends the remote shell like a local one.
	tm.send("C-d")
	tm.waitFor("CLI-EXIT=0")
	list, err = s.Client(key).ListSessions(t.Context())
	if err != nil || len(list) != 0 {
		t.Fatalf("the ephemeral sandbox outlived its shell: %+v %v", list, err)
	}
	if left := s.leaks(t, eph); len(left) > 0 {
		t.Fatalf("left behind: %v", left)
	}
}

func TestShellPipedAndCommand(t *testing.T) {
	s := sharedServer(t)
	key := s.account(t, "free")
	id := s.sandbox(t, key)
	r := s.cli(t, key, strings.NewReader("cd /tmp\necho piped from $(pwd)\nexit 5\n"), "shell", id)
	if r.Code != 5 || r.Stdout != "piped from /tmp\n" {
		t.Fatalf("piped shell: %+v", r)
	}
	r = s.cli(t, key, nil, "shell", id, "-c", "echo via-c; exit 6")
	if r.Code != 6 || r.Stdout != "via-c\n" {
		t.Fatalf("-c: %+v", r)
	}
}

// TestShellSurvivesServerRestart: the terminal lives in the sandbox's
// agent, so a `chaser shell` whose server is killed (SIGKILL) and
// restarted reconnects to the same shell, with its state, and resumes. The
// CLI talks to a fixed address (a TCP relay standing for a load balancer)
// that points at whichever server runs.
func TestShellSurvivesServerRestart(t *testing.T) {
	s := newServer(t)
	key := s.account(t, "free")
	id := s.sandbox(t, key)
	var target atomic.Value
	target.Store(s.Addr)
	relay := tcpRelay(t, func() string { return target.Load().(string) })
	env := "CHASER_API_URL=http://" + relay + " CHASER_API_KEY=" + key
	tm := newTmux(t, 100, 30, "env "+env+" "+binary+" shell "+id+"; echo CLI-EXIT=$?; sleep 600")
	tm.waitFor("#")
	tm.send("X=survivor; echo set-$X", "Enter")
	tm.waitFor("set-survivor")

	s.kill()
	s2 := startServer(t, s.DataDir)
	t.Cleanup(func() {
		s2.stop()
		if t.Failed() {
			t.Logf("restarted server log:\n%s", s2.Log())
		}
	})
	target.Store(s2.Addr)
	// The CLI retries every second; keys typed while it is away are
	// lost, as on a frozen ssh session, so type once it is back.
	time.Sleep(2500 * time.Millisecond)
	tm.send("echo $X-still-here", "Enter")
	tm.waitFor("survivor-still-here")
	tm.send("exit 4", "Enter")
	tm.waitFor("CLI-EXIT=4")
}

// tcpRelay listens on loopback and relays every connection to the address
// target returns at that moment.
func tcpRelay(t *testing.T, target func() string) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				u, err := net.Dial("tcp", target())
				if err != nil {
					return
				}
				defer u.Close()
				go func() { io.Copy(u, c); u.Close() }()
				io.Copy(c, u)
			}()
		}
	}()
	return l.Addr().String()
}

// TestPTYRawMode: with raw=true the PTY WebSocket speaks what stock
// terminal clients (xterm.js's attach addon, websocat) speak: every client
// frame is input, text frames included, and the server sends terminal
// bytes only — no JSON — ending with a normal close whose reason carries
// the exit code.
func TestPTYRawMode(t *testing.T) {
	s := sharedServer(t)
	key := s.account(t, "free")
	id := s.sandbox(t, key)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	dial := func(q url.Values) *websocket.Conn {
		t.Helper()
		q.Set("token", key)
		c, resp, err := websocket.Dial(ctx, s.wsURL(id, q), nil)
		if err != nil {
			status := 0
			if resp != nil {
				status = resp.StatusCode
			}
			t.Fatalf("dial %v: %d %v", q, status, err)
		}
		t.Cleanup(func() { c.CloseNow() })
		return c
	}
	// readUntil reads binary frames until they contain want; a text
	// frame fails the test.
	readUntil := func(c *websocket.Conn, want string) string {
		t.Helper()
		var out strings.Builder
		for !strings.Contains(out.String(), want) {
			typ, data, err := c.Read(ctx)
			if err != nil {
				t.Fatalf("waiting for %q: %v (output so far %q)", want, err, out.String())
			}
			if typ != websocket.MessageBinary {
				t.Fatalf("raw mode sent a text frame %q", data)
			}
			out.Write(data)
		}
		return out.String()
	}
	c := dial(url.Values{"raw": {"true"}, "cols": {"91"}, "rows": {"17"}})
	readUntil(c, "#") // root's prompt, no "open" message before it
	// Keystrokes as text frames, the way xterm.js's onData sends them.
	if err := c.Write(ctx, websocket.MessageText, []byte("stty size; echo $((6*7))\r")); err != nil {
		t.Fatal(err)
	}
	// One read may hold both answers: wait for the last, check the first.
	if out := readUntil(c, "42\r\n"); !strings.Contains(out, "17 91") {
		t.Fatalf("stty size: %q, want 17 91", out)
	}
	// Binary frames are input too; a JSON-looking text frame is just typed.
	c.Write(ctx, websocket.MessageBinary, []byte("echo bin''ary\r"))
	readUntil(c, "binary\r\n")
	c.Write(ctx, websocket.MessageText, []byte(`echo '{"type":"resize"}'`+"\r"))
	readUntil(c, `{"type":"resize"}`+"\r\n")
	c.Write(ctx, websocket.MessageText, []byte("exit 3\r"))
	for {
		typ, data, err := c.Read(ctx)
		if err != nil {
			var ce websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != websocket.StatusNormalClosure || ce.Reason != "exit 3" {
				t.Fatalf("end of the shell: %v, want a normal close with reason \"exit 3\"", err)
			}
			break
		}
		if typ != websocket.MessageBinary {
			t.Fatalf("raw mode sent a text frame %q", data)
		}
	}

	// exec mode: the command's output, then the close with its code.
	c = dial(url.Values{"raw": {"1"}, "mode": {"exec"}, "command": {"echo from-exec; exit 5"}})
	readUntil(c, "from-exec\r\n")
	if _, _, err := c.Read(ctx); websocket.CloseStatus(err) != websocket.StatusNormalClosure || !strings.Contains(err.Error(), "exit 5") {
		t.Fatalf("exec end: %v", err)
	}

	// Bad combinations are refused before the upgrade.
	for _, q := range []string{"raw=true&mode=agent", "raw=maybe", "crlf=true", "crlf=true&mode=exec&command=id"} {
		v, _ := url.ParseQuery(q)
		v.Set("token", key)
		_, resp, err := websocket.Dial(ctx, s.wsURL(id, v), nil)
		if err == nil || resp == nil {
			t.Fatalf("%s: upgraded: %v", q, err)
		}
		var body bytes.Buffer
		body.ReadFrom(resp.Body)
		expectError(t, resp.StatusCode, body.Bytes(), 400, "invalid_argument")
	}
}

// TestPTYAgentModeCRLF: crlf=true ends agent-mode output lines with \r\n,
// so a terminal (xterm.js without convertEol) shows them under each other.
func TestPTYAgentModeCRLF(t *testing.T) {
	s := sharedServer(t)
	key := s.account(t, "free")
	id := s.sandbox(t, key)
	w := s.dialWS(t, key, id, url.Values{"mode": {"agent"}, "crlf": {"true"}})
	w.run(`printf 'one\ntwo\n'; ls /nonexistent-dir`)
	out, done := w.until("done")
	if want := "one\r\ntwo\r\nls: cannot access '/nonexistent-dir': No such file or directory\r\n"; out != want || done.ExitCode == nil || *done.ExitCode != 2 {
		t.Fatalf("crlf output %q (done %+v), want %q", out, done, want)
	}
	// Without it, output is exactly what the command wrote.
	w = s.dialWS(t, key, id, url.Values{"mode": {"agent"}})
	w.run(`printf 'one\ntwo\n'`)
	if out, _ := w.until("done"); out != "one\ntwo\n" {
		t.Fatalf("plain output %q", out)
	}
}

// TestPTYAgentModeErrorsNameNoInternals: a syntax error or an unknown
// command in agent mode reads as it does for `bash -c CMD`, with line
// numbers of the command itself, never the agent's pipe or its counter.
func TestPTYAgentModeErrorsNameNoInternals(t *testing.T) {
	s := sharedServer(t)
	key := s.account(t, "free")
	id := s.sandbox(t, key)
	w := s.dialWS(t, key, id, url.Values{"mode": {"agent"}})
	for _, tc := range []struct {
		cmd, out string
		code     int
	}{
		{"echo warm-up; true", "warm-up\n", 0},
		{"echo 'unterminated", "bash: eval: line 1: unexpected EOF while looking for matching `''\n", 2},
		{"nosuchcmd", "bash: line 1: nosuchcmd: command not found\n", 127},
		{"echo first\nif then", "first\nbash: eval: line 2: syntax error near unexpected token `then'\nbash: eval: line 2: `if then'\n", 2},
		{"cd /no/such/dir", "bash: line 1: cd: /no/such/dir: No such file or directory\n", 1},
		{"echo $0", "bash\n", 0},
		// break and continue outside a loop of the command end the
		// command (not the shell).
		{"break; echo not-here", "", 0},
		{"continue", "", 0},
		{"echo still-running", "still-running\n", 0},
	} {
		w.run(tc.cmd)
		out, done := w.until("done")
		if out != tc.out || done.ExitCode == nil || *done.ExitCode != tc.code {
			t.Errorf("%q: output %q exit %v, want %q exit %d", tc.cmd, out, done.ExitCode, tc.out, tc.code)
		}
	}
}

// TestPTYUpgradeLog: the access log shows a PTY WebSocket's 101 and its
// close code, and an upgrade refused before the 101 — which a browser
// can only report as close 1006 — as a warning with the reason; the
// documented curl command shows that reason to the user.
func TestPTYUpgradeLog(t *testing.T) {
	s := newServer(t)
	key := s.account(t, "free")
	id := s.sandbox(t, key)
	w := s.dialWS(t, key, id, url.Values{"mode": {"exec"}, "command": {"exit 0"}})
	w.until("exit")
	if _, _, err := w.c.Read(t.Context()); websocket.CloseStatus(err) != websocket.StatusNormalClosure {
		t.Fatalf("close: %v", err)
	}
	w = s.dialWS(t, key, id, url.Values{})
	w.c.Close(websocket.StatusGoingAway, "tab closed")

	// As docs/terminal.md says, to see why a browser got 1006:
	out, err := exec.CommandContext(t.Context(), "curl", "-sS", "-i",
		"-H", "Connection: Upgrade", "-H", "Upgrade: websocket",
		"-H", "Sec-WebSocket-Version: 13", "-H", "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==",
		s.URL+"/v1/sessions/"+id+"/pty?mode=telepathy&token="+key).CombinedOutput()
	if err != nil {
		t.Fatalf("curl: %v: %s", err, out)
	}
	if !strings.HasPrefix(string(out), "HTTP/1.1 400") || !strings.Contains(string(out), `unknown mode \"telepathy\"`) {
		t.Fatalf("curl shows no reason:\n%s", out)
	}

	path := "path=/v1/sessions/" + id + "/pty "
	deadline := time.Now().Add(10 * time.Second)
	for {
		var upgrades, refused []string
		for _, line := range strings.Split(s.Log(), "\n") {
			if !strings.Contains(line, path) {
				continue
			}
			if strings.Contains(line, "status=101 ") {
				upgrades = append(upgrades, line)
			}
			if strings.Contains(line, "level=WARN") && strings.Contains(line, "websocket upgrade refused") && strings.Contains(line, "status=400 ") && strings.Contains(line, `unknown mode`) {
				refused = append(refused, line)
			}
			if strings.Contains(line, key) {
				t.Fatalf("the key is in the log: %s", line)
			}
		}
		all := strings.Join(upgrades, "\n") // the two lines come in either order
		ok := len(upgrades) == 2 && len(refused) == 1 &&
			strings.Contains(all, "ws_close=1000 ws_close_by=server") &&
			strings.Contains(all, "ws_close=1001 ws_close_by=client")
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("access log: upgrades %q, refused %q; want two 101 lines with close 1000 (server) and 1001 (client), one refusal with its reason", upgrades, refused)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestPTYAgentModeCtrlC: Ctrl-C typed while the agent-mode shell waits
// for a command, or while one runs, never ends the shell or loses a
// command.
func TestPTYAgentModeCtrlC(t *testing.T) {
	s := sharedServer(t)
	key := s.account(t, "free")
	id := s.sandbox(t, key)
	w := s.dialWS(t, key, id, url.Values{"mode": {"agent"}})
	w.run("X=kept")
	w.until("done")
	w.keys("\x03") // idle
	time.Sleep(200 * time.Millisecond)
	w.run("echo $X-after-idle-ctrl-c")
	if out, done := w.until("done"); out != "kept-after-idle-ctrl-c\n" || *done.ExitCode != 0 {
		t.Fatalf("after an idle Ctrl-C: %q %+v", out, done)
	}
	// The marker comes from the process that then sleeps, so Ctrl-C
	// cannot fall between the echo and the sleep (the shell traps INT
	// and would go on to a 100 s sleep).
	w.run("sh -c 'echo sl\"\"eeping; exec sleep 100'")
	w.untilOutput("sleeping\n")
	w.keys("\x03")
	if _, done := w.until("done"); *done.ExitCode != 130 {
		t.Fatalf("interrupted command: %+v, want exit 130", done)
	}
	w.run("echo $X")
	if out, _ := w.until("done"); out != "kept\n" {
		t.Fatalf("after Ctrl-C: %q", out)
	}
}
