package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/chaserhq/chaser/api"
)

// These tests run the agent's real PTY endpoint (real shells on real
// pseudo-terminals) under httptest, outside any sandbox.

func newTestAgent(t *testing.T) (*Agent, string) {
	t.Helper()
	// A HOME of its own keeps the host user's dotfiles out of the shells.
	a := New(Config{Env: []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + t.TempDir(), "CHASER=1"}})
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	return a, "ws" + strings.TrimPrefix(srv.URL, "http") + "/v1/pty"
}

type wsConn struct {
	t    *testing.T
	c    *websocket.Conn
	open api.PTYMessage
	got  int64 // bytes of frames after "open"
}

func dialPTY(t *testing.T, base string, q url.Values) *wsConn {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, base+"?"+q.Encode(), nil)
	if err != nil {
		t.Fatalf("dial %v: %v", q, err)
	}
	t.Cleanup(func() { c.CloseNow() })
	w := &wsConn{t: t, c: c}
	typ, data, err := c.Read(ctx)
	if err != nil || typ != websocket.MessageText {
		t.Fatalf("first frame: %v %v", typ, err)
	}
	if err := json.Unmarshal(data, &w.open); err != nil || w.open.Type != api.PTYOpen || w.open.PTYID == "" {
		t.Fatalf("first frame %s is not an open message", data)
	}
	return w
}

func (w *wsConn) send(m api.PTYMessage) {
	b, _ := json.Marshal(m)
	if err := w.c.Write(w.t.Context(), websocket.MessageText, b); err != nil {
		w.t.Fatal(err)
	}
}

// until reads frames until stop returns true for a control message; it
// returns the terminal bytes read and that message.
func (w *wsConn) until(stop func(api.PTYMessage) bool) (string, api.PTYMessage) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(w.t.Context(), 15*time.Second)
	defer cancel()
	var out bytes.Buffer
	for {
		typ, data, err := w.c.Read(ctx)
		if err != nil {
			w.t.Fatalf("read: %v (output so far %q)", err, out.String())
		}
		w.got += int64(len(data))
		if typ == websocket.MessageBinary {
			out.Write(data)
			continue
		}
		var m api.PTYMessage
		if err := json.Unmarshal(data, &m); err != nil {
			w.t.Fatalf("bad control frame %q", data)
		}
		if stop(m) {
			return out.String(), m
		}
	}
}

func isType(typ string) func(api.PTYMessage) bool {
	return func(m api.PTYMessage) bool { return m.Type == typ }
}

func TestAgentModeKeepsStateAndReportsDone(t *testing.T) {
	_, base := newTestAgent(t)
	w := dialPTY(t, base, url.Values{"mode": {"agent"}, "cwd": {"/"}})
	steps := []struct {
		cmd, out string
		code     int
		cwd      string
	}{
		{"cd /tmp && export FOO=bar", "", 0, "/tmp"},
		{"echo $FOO; pwd", "bar\n/tmp\n", 0, "/tmp"},
		{"f() { echo \"fn $1\"; }", "", 0, "/tmp"},
		{"f 'it''s'", "fn its\n", 0, "/tmp"},
		{"printf 'no newline'", "no newline", 0, "/tmp"},
		{"printf '\\033[31mred\\033[0m\\n'", "red\n", 0, "/tmp"},
		{"false", "", 1, "/tmp"},
		{"if then", "", 2, "/tmp"}, // a syntax error does not end the shell
		{"echo 'multi\nline'; (exit 7)", "multi\nline\n", 7, "/tmp"},
		{"test -t 0 && echo tty; echo $TERM", "tty\ndumb\n", 0, "/tmp"},
		{"alias hi='echo alias works'", "", 0, "/tmp"},
		{"hi", "alias works\n", 0, "/tmp"},
		{"exec >/dev/null", "", 0, "/tmp"},
		{"echo hidden", "", 0, "/tmp"},
		{"exec >/dev/tty; echo back", "back\n", 0, "/tmp"},
	}
	for i, s := range steps {
		w.send(api.PTYMessage{Type: api.PTYRun, Command: s.cmd, ID: string(rune('a' + i))})
		out, done := w.until(isType(api.PTYDone))
		if s.cmd == "if then" {
			if !strings.Contains(out, "syntax error") {
				t.Errorf("%q: output %q has no syntax error", s.cmd, out)
			}
		} else if out != s.out {
			t.Errorf("%q: output %q, want %q", s.cmd, out, s.out)
		}
		if done.ExitCode == nil || *done.ExitCode != s.code || done.Cwd != s.cwd || done.ID != string(rune('a'+i)) {
			t.Errorf("%q: done %+v, want code %d cwd %s", s.cmd, done, s.code, s.cwd)
		}
	}
}

func TestAgentModeQueuesInOrder(t *testing.T) {
	_, base := newTestAgent(t)
	w := dialPTY(t, base, url.Values{"mode": {"agent"}})
	for i := range 5 {
		w.send(api.PTYMessage{Type: api.PTYRun, Command: "sleep 0.0" + string(rune('5'-i)) + "; echo " + string(rune('0'+i)), ID: string(rune('0' + i))})
	}
	for i := range 5 {
		out, done := w.until(isType(api.PTYDone))
		if want := string(rune('0'+i)) + "\n"; out != want || done.ID != string(rune('0'+i)) {
			t.Fatalf("command %d: output %q id %q", i, out, done.ID)
		}
	}
	// Ctrl-C stops the running command, not the shell.
	w.send(api.PTYMessage{Type: api.PTYRun, Command: "echo started; sleep 30", ID: "s"})
	for {
		typ, data, err := w.c.Read(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if typ == websocket.MessageBinary && strings.Contains(string(data), "started") {
			break
		}
	}
	time.Sleep(100 * time.Millisecond) // from echo to sleep
	if err := w.c.Write(t.Context(), websocket.MessageBinary, []byte{3}); err != nil {
		t.Fatal(err)
	}
	_, done := w.until(isType(api.PTYDone))
	if *done.ExitCode != 130 {
		t.Fatalf("interrupted sleep: exit %d, want 130", *done.ExitCode)
	}
	// So does a signal message, e.g. TERM to the foreground group.
	w.send(api.PTYMessage{Type: api.PTYRun, Command: "sleep 30"})
	time.Sleep(300 * time.Millisecond)
	w.send(api.PTYMessage{Type: api.PTYSignal, Signal: "TERM"})
	if _, done = w.until(isType(api.PTYDone)); *done.ExitCode != 143 {
		t.Fatalf("terminated sleep: exit %d, want 143", *done.ExitCode)
	}
	w.send(api.PTYMessage{Type: api.PTYRun, Command: "exit 4"})
	_, exit := w.until(isType(api.PTYExit))
	if exit.Code == nil || *exit.Code != 4 {
		t.Fatalf("exit message %+v, want code 4", exit)
	}
}

func TestExecModeAndHumanMode(t *testing.T) {
	_, base := newTestAgent(t)
	w := dialPTY(t, base, url.Values{"mode": {"exec"}, "command": {"stty size; test -t 1 && echo tty; exit 3"}, "cols": {"123"}, "rows": {"45"}})
	out, exit := w.until(isType(api.PTYExit))
	if !strings.Contains(out, "45 123") || !strings.Contains(out, "tty") || *exit.Code != 3 {
		t.Fatalf("exec: output %q exit %+v", out, exit)
	}
	if _, _, err := w.c.Read(t.Context()); websocket.CloseStatus(err) != websocket.StatusNormalClosure {
		t.Fatalf("after exit: %v, want a normal close", err)
	}

	h := dialPTY(t, base, url.Values{"cwd": {"/"}})
	// Type once the shell shows its prompt, as a person would.
	if typ, _, err := h.c.Read(t.Context()); err != nil || typ != websocket.MessageBinary {
		t.Fatalf("prompt: %v %v", typ, err)
	}
	if err := h.c.Write(t.Context(), websocket.MessageBinary, []byte("echo $((6*7)); exit 5\r")); err != nil {
		t.Fatal(err)
	}
	out, exit = h.until(isType(api.PTYExit))
	if !strings.Contains(out, "42") || *exit.Code != 5 {
		t.Fatalf("human: output %q exit %+v", out, exit)
	}
}

func TestReconnectReplaysMissedOutput(t *testing.T) {
	a, base := newTestAgent(t)
	w := dialPTY(t, base, url.Values{"mode": {"agent"}})
	w.send(api.PTYMessage{Type: api.PTYRun, Command: "echo one"})
	w.until(isType(api.PTYDone))
	id, seen := w.open.PTYID, *w.open.Offset+w.got
	w.c.CloseNow()

	// Output produced while nobody is connected is kept...
	w2 := dialPTY(t, base, url.Values{"pty_id": {id}, "offset": {itoa(seen)}})
	if *w2.open.Offset != seen {
		t.Fatalf("reattached at %d, want %d", *w2.open.Offset, seen)
	}
	w2.send(api.PTYMessage{Type: api.PTYRun, Command: "echo mid"})
	if out, _ := w2.until(isType(api.PTYDone)); out != "mid\n" {
		t.Fatalf("after reattach: %q", out)
	}
	// The agent notes what it sent right after each write; give it a
	// moment so that the resume point below is exact.
	time.Sleep(100 * time.Millisecond)
	w2.send(api.PTYMessage{Type: api.PTYRun, Command: "sleep 0.3; echo two", ID: "x"})
	time.Sleep(50 * time.Millisecond)
	w2.c.CloseNow()
	time.Sleep(600 * time.Millisecond)
	// ...and replayed on the next connection, from where the last one
	// was sent to when no offset is given.
	w3 := dialPTY(t, base, url.Values{"pty_id": {id}})
	out, done := w3.until(isType(api.PTYDone))
	if out != "two\n" || done.ID != "x" {
		t.Fatalf("replay: %q %+v", out, done)
	}
	// Replay from the start of the log.
	w4 := dialPTY(t, base, url.Values{"pty_id": {id}, "offset": {"0"}})
	out, _ = w4.until(isType(api.PTYDone))
	if out != "one\n" {
		t.Fatalf("replay from 0: %q", out)
	}
	// The newest connection owns the terminal; the one before is closed.
	if _, _, err := w3.c.Read(t.Context()); websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Fatalf("replaced connection: %v", err)
	}

	// Without a connection, the shell dies after the grace period.
	a.terms.mu.Lock()
	a.terms.grace = 200 * time.Millisecond
	a.terms.mu.Unlock()
	w4.c.CloseNow()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := a.terms.get(id); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("terminal still there after its grace")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestTerminalLimit(t *testing.T) {
	_, base := newTestAgent(t)
	for range MaxTerminals {
		dialPTY(t, base, url.Values{"mode": {"agent"}})
	}
	_, resp, err := websocket.Dial(t.Context(), base+"?mode=agent", nil)
	if err == nil || resp == nil || resp.StatusCode != 429 {
		t.Fatalf("terminal %d: %v %v, want 429", MaxTerminals+1, resp, err)
	}
}

func TestBadControlFrames(t *testing.T) {
	_, base := newTestAgent(t)
	for _, tc := range []struct{ name, frame, want string }{
		{"not json", "{nope", "not a JSON object"},
		{"no type", `{"cols":3}`, "no \"type\""},
		{"unknown type", `{"type":"dance"}`, "unknown control type"},
		{"zero size", `{"type":"resize","cols":0,"rows":10}`, "out of range"},
		{"absurd size", `{"type":"resize","cols":100,"rows":100000}`, "out of range"},
		{"run in human mode", `{"type":"run","command":"id"}`, "only for mode=agent"},
		{"bad signal", `{"type":"signal","signal":"NOPE"}`, "unknown signal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := dialPTY(t, base, url.Values{})
			if err := w.c.Write(t.Context(), websocket.MessageText, []byte(tc.frame)); err != nil {
				t.Fatal(err)
			}
			_, m := w.until(isType(api.PTYError))
			if m.Error != "invalid_argument" || !strings.Contains(m.Message, tc.want) {
				t.Fatalf("error %+v, want %q", m, tc.want)
			}
			if _, _, err := w.c.Read(t.Context()); websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
				t.Fatalf("close: %v", err)
			}
		})
	}
}

func TestPTYQueryErrorsBeforeUpgrade(t *testing.T) {
	_, base := newTestAgent(t)
	for _, q := range []string{"mode=bogus", "mode=exec", "cols=0", "rows=5000", "cols=x", "pty_id=p-nope", "cwd=relative", "cwd=/nonexistent", "offset=3"} {
		_, resp, err := websocket.Dial(t.Context(), base+"?"+q, nil)
		if err == nil {
			t.Fatalf("%s: upgraded", q)
		}
		if resp == nil || resp.StatusCode < 400 || resp.StatusCode >= 500 {
			t.Fatalf("%s: %v %v", q, resp, err)
		}
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestTerminalLimitUnderConcurrentStarts opens twice the limit of terminals
// at once: the limit holds exactly, however the starts interleave.
func TestTerminalLimitUnderConcurrentStarts(t *testing.T) {
	a, base := newTestAgent(t)
	const tries = 2 * MaxTerminals
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		opened int
		bad    []string
	)
	for range tries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			c, resp, err := websocket.Dial(ctx, base+"?mode=agent", nil)
			if err != nil {
				// Refused before the upgrade.
				mu.Lock()
				defer mu.Unlock()
				if resp == nil || resp.StatusCode != 429 {
					bad = append(bad, fmt.Sprintf("dial: %v %v", resp, err))
				}
				return
			}
			t.Cleanup(func() { c.CloseNow() })
			_, data, err := c.Read(ctx)
			var m api.PTYMessage
			if err == nil {
				err = json.Unmarshal(data, &m)
			}
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				bad = append(bad, fmt.Sprintf("first frame: %v", err))
			case m.Type == api.PTYOpen:
				opened++
			case m.Type == api.PTYError && m.Error == "resource_exhausted":
				// Refused after the upgrade.
			default:
				bad = append(bad, fmt.Sprintf("first frame %s", data))
			}
		}()
	}
	wg.Wait()
	if len(bad) > 0 {
		t.Fatalf("unexpected answers: %v", bad)
	}
	if opened != MaxTerminals || a.terms.count() != MaxTerminals {
		t.Fatalf("%d concurrent starts opened %d terminals (registry holds %d), want exactly %d", tries, opened, a.terms.count(), MaxTerminals)
	}
}
