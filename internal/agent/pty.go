package agent

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/agent/process"
	"github.com/chaserhq/chaser/internal/errdefs"
	"github.com/chaserhq/chaser/internal/httpjson"
)

// Terminal lifetimes and sizes.
const (
	// PTYGrace is how long a terminal outlives its dropped connection: a
	// client reconnecting with ?pty_id= within it gets what it missed.
	PTYGrace = 60 * time.Second
	// PTYBuffer is how many bytes of output each terminal keeps for
	// replay; older output is dropped first.
	PTYBuffer = 1 << 20
	// MaxTerminals bounds the terminals of one sandbox.
	MaxTerminals = 32
	// maxInputFrame bounds one client frame (a paste, a command).
	maxInputFrame = 1 << 20
	// maxQueue bounds agent-mode commands waiting their turn.
	maxQueue = 256
	// ttyDrainGrace is how long output is still read after the shell
	// exited, for background jobs that keep the terminal open.
	ttyDrainGrace = 200 * time.Millisecond
)

// terminals is the registry of a sandbox's terminals. A terminal belongs to
// the agent, not to a connection: connections attach and detach, and only
// PTYGrace after the last one left does the shell die.
type terminals struct {
	log    *slog.Logger
	buffer int

	mu    sync.Mutex
	grace time.Duration
	m     map[string]*terminal
	// starting counts the slots reserved by terminals whose shell is
	// being started: the limit counts them with m, so that a check and
	// the insert it allows are one step under mu.
	starting int
}

func newTerminals(log *slog.Logger) *terminals {
	return &terminals{log: log, grace: PTYGrace, buffer: PTYBuffer, m: map[string]*terminal{}}
}

func (ts *terminals) get(id string) (*terminal, error) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	t, ok := ts.m[id]
	if !ok {
		return nil, errdefs.New(errdefs.ErrNotFound, fmt.Sprintf("terminal %s not found (it ended, or its %s reconnect grace passed)", id, PTYGrace))
	}
	return t, nil
}

// checkRoom returns errdefs.ErrResourceExhausted when the sandbox has
// MaxTerminals terminals (started or starting). It only looks: reserve
// takes the slot.
func (ts *terminals) checkRoom() error {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.roomLocked()
}

func (ts *terminals) roomLocked() error {
	if n := len(ts.m) + ts.starting; n >= MaxTerminals {
		return errdefs.New(errdefs.ErrResourceExhausted, fmt.Sprintf("this sandbox has %d terminals, the most allowed; close one (a dropped one ends %s after its connection)", n, PTYGrace))
	}
	return nil
}

// reserve takes a slot for a terminal about to start, or returns
// errdefs.ErrResourceExhausted. The caller ends the reservation with
// exactly one of add or release.
func (ts *terminals) reserve() error {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if err := ts.roomLocked(); err != nil {
		return err
	}
	ts.starting++
	return nil
}

// release gives back a slot whose terminal did not start.
func (ts *terminals) release() {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.starting--
}

// add turns a reserved slot into the started terminal t.
func (ts *terminals) add(t *terminal) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.starting--
	ts.m[t.id] = t
}

// count returns how many terminals the sandbox has.
func (ts *terminals) count() int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return len(ts.m)
}

func (ts *terminals) remove(t *terminal) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.m[t.id] == t {
		delete(ts.m, t.id)
	}
}

// terminal is one shell on a pseudo-terminal and its replayable output.
type terminal struct {
	id    string
	mode  string
	tty   *process.TTY
	out   *frameLog
	owner *terminals
	log   *slog.Logger

	// scripts feeds the agent-mode shell; one goroutine writes them so
	// a full pipe never blocks whoever queued the command.
	scripts chan []byte
	nonce   string
	scan    *doneScanner
	// loop says the shell runs bashLoop: commands go as NUL-terminated
	// records rather than as script lines.
	loop bool
	// crlf turns the agent-mode output's \n into \r\n (PTYOptions.CRLF).
	crlf bool

	inputMu sync.Mutex // serialises writes to the terminal

	mu      sync.Mutex
	conn    *attachment      // the attached connection, or nil
	sent    int64            // end of what the last connection was sent
	timer   *time.Timer      // grace timer while detached
	queue   []api.PTYMessage // agent-mode commands waiting
	running *api.PTYMessage  // agent-mode command running
	ended   bool             // removed from the registry
}

var errReplaced = errors.New("another connection attached to this terminal")

// attachment is one connection to a terminal.
type attachment struct{ cancel context.CancelCauseFunc }

// startTerminal starts the shell of a new terminal as id in cwd (see
// termStart).
func (a *Agent) startTerminal(o PTYOptions, id identity, shell, cwd string) (*terminal, error) {
	ts := a.terms
	if err := ts.reserve(); err != nil {
		return nil, err
	}
	t := &terminal{id: "p-" + randHex(10), mode: o.Mode, out: newFrameLog(ts.buffer), owner: ts}
	t.log = ts.log.With("pty_id", t.id, "mode", o.Mode)
	spec := process.TTYSpec{Cwd: cwd, Cols: o.Cols, Rows: o.Rows, User: id.user}
	switch o.Mode {
	case api.PTYModeHuman:
		spec.Argv = []string{shell, "-l"}
		spec.Env = a.commandEnv(id, map[string]string{"TERM": "xterm-256color", "SHELL": shell})
	case api.PTYModeExec:
		spec.Argv = []string{shell, "-c", o.Command}
		spec.Env = a.commandEnv(id, map[string]string{"TERM": "xterm-256color", "SHELL": shell})
	case api.PTYModeAgent:
		// The shell reads its commands from fd 3, not from the terminal:
		// it stays non-interactive (no prompt, no line editing, no
		// echo) while the commands it runs keep the terminal as stdin.
		// bash runs bashLoop, so its messages name no agent internals;
		// another sh reads fd 3 as its script.
		t.loop = filepath.Base(shell) == "bash"
		t.crlf = o.CRLF
		spec.Argv = []string{shell, "/proc/self/fd/3"}
		if t.loop {
			spec.Argv = []string{shell, "-c", bashLoop, "bash"}
		}
		spec.Raw, spec.Script = true, true
		spec.Env = a.commandEnv(id, map[string]string{
			"TERM": "dumb", "SHELL": shell, "PAGER": "cat", "GIT_PAGER": "cat", "NO_COLOR": "1",
		})
		t.nonce = randHex(8)
		t.scan = newDoneScanner(t.nonce)
		t.scripts = make(chan []byte, maxQueue+1)
	}
	tty, err := a.procs.StartTTY(spec)
	if err != nil {
		ts.release()
		return nil, err
	}
	t.tty = tty
	switch {
	case t.loop:
		t.scripts <- []byte(t.nonce + "\x00")
		go t.writeScripts()
	case t.scripts != nil:
		// Close the inherited fd 3 so commands cannot read the script;
		// a trapped SIGINT (Ctrl-C) stops the command, not the shell.
		// Aliases expand only in interactive shells unless asked for
		// (bash); sh has no shopt, hence the silenced error.
		// fd 9 keeps the terminal for the end markers even when a
		// command redirects the shell's stdout for good (exec >file).
		t.scripts <- []byte("exec 3<&- 9>&1\ntrap : INT\nshopt -s expand_aliases 2>/dev/null\n")
		go t.writeScripts()
	}
	ts.add(t)
	go t.pump()
	t.log.Info("terminal started", "pid", tty.PID)
	return t, nil
}

func (t *terminal) writeScripts() {
	defer t.tty.Script.Close()
	for {
		select {
		case s := <-t.scripts:
			if _, err := t.tty.Script.Write(s); err != nil {
				return
			}
		case <-t.tty.Exited():
			return
		}
	}
}

// pump copies the terminal's output into the log until the shell has
// exited, then logs the exit message and completes the log.
func (t *terminal) pump() {
	read := make(chan struct{})
	go func() {
		defer close(read)
		buf := make([]byte, 32<<10)
		for {
			n, err := t.tty.Master.Read(buf)
			if n > 0 {
				t.output(buf[:n])
			}
			if err != nil {
				return
			}
		}
	}()
	<-t.tty.Exited()
	select {
	case <-read:
	case <-time.After(ttyDrainGrace):
		// Background jobs hold the terminal open; hang it up, as
		// closing a terminal window does.
		t.tty.Master.Close()
		<-read
	}
	t.tty.Master.Close()
	code := t.tty.ExitCode()
	t.control(api.PTYMessage{Type: api.PTYExit, Code: &code})
	t.out.close()
	t.log.Info("terminal exited", "code", code)
	t.mu.Lock()
	detached := t.conn == nil
	t.mu.Unlock()
	if detached {
		t.startGrace()
	}
}

func (t *terminal) output(p []byte) {
	if t.scan == nil {
		t.out.append(false, p)
		return
	}
	t.scan.write(p, func(b []byte) {
		if t.crlf {
			b = bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n"))
		}
		t.out.append(false, b)
	}, t.done)
}

func (t *terminal) control(m api.PTYMessage) {
	b, _ := json.Marshal(m)
	t.out.append(true, b)
}

// done records the end of the running agent-mode command and starts the
// next one.
func (t *terminal) done(ev doneEvent) {
	t.mu.Lock()
	msg := api.PTYMessage{Type: api.PTYDone, ExitCode: &ev.ExitCode, Cwd: ev.Cwd}
	if t.running != nil {
		msg.ID = t.running.ID
		t.running = nil
	}
	t.control(msg)
	t.startNextLocked()
	t.mu.Unlock()
}

// run queues an agent-mode command.
func (t *terminal) run(m api.PTYMessage) error {
	if t.mode != api.PTYModeAgent {
		return errdefs.New(errdefs.ErrInvalidArgument, `"run" is only for mode=agent; send input as binary frames`)
	}
	if strings.TrimSpace(m.Command) == "" {
		return errdefs.New(errdefs.ErrInvalidArgument, `"run" needs a non-empty "command"`)
	}
	if strings.ContainsRune(m.Command, 0) {
		return errdefs.New(errdefs.ErrInvalidArgument, "command must not contain NUL bytes")
	}
	select {
	case <-t.tty.Exited():
		// Nobody would read the command: refuse it rather than queue
		// it forever.
		return errdefs.New(errdefs.ErrFailedPrecondition, "the shell has exited")
	default:
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.queue) >= maxQueue {
		return errdefs.New(errdefs.ErrResourceExhausted, fmt.Sprintf("%d commands are already queued", maxQueue))
	}
	t.queue = append(t.queue, m)
	if t.running == nil {
		t.startNextLocked()
	}
	return nil
}

func (t *terminal) startNextLocked() {
	if len(t.queue) == 0 {
		return
	}
	m := t.queue[0]
	t.queue = t.queue[1:]
	t.running = &m
	if t.loop {
		t.scripts <- append([]byte(m.Command), 0)
		return
	}
	t.scripts <- agentScript(m.Command, t.nonce)
}

// bashLoop is the agent-mode program of bash. It reads NUL-terminated
// records from fd 3 — the nonce, then one command each — and runs every
// command with `command eval` at the top level of `bash -c`: cd, variables
// and functions persist, a syntax error does not end the shell, and
// messages read as they do for `bash -c CMD` ("bash: line 1: x: command
// not found") instead of naming the pipe. It is one line, so line numbers
// in messages count from the command's own first line. The one-pass for
// loop catches a `break` or `continue` of the command, which would end the
// read loop; `read` fails above 128 when a trapped Ctrl-C interrupts it
// while idle. Commands run with fd 3 closed, and the end marker goes to
// fd 9, a copy of the terminal that survives `exec >file`.
const bashLoop = `IFS= read -r -d '' __chaser_nonce <&3 || exit; exec 9>&1; trap : INT; shopt -s expand_aliases; ` +
	`while :; do IFS= read -r -d '' __chaser_cmd <&3 || { [ $? -gt 128 ] && continue; exit; }; ` +
	`for __chaser_cmd in "$__chaser_cmd"; do command eval "$__chaser_cmd" 3<&-; done; ` +
	`printf '\000%s;%d;%s\000' "$__chaser_nonce" "$?" "$PWD" >&9; done`

// agentScript wraps a command for the agent-mode shell: `command eval`
// runs it in the shell itself (so cd, variables and functions persist)
// without a syntax error ending the shell, then the marker reports the
// exit code and the working directory.
func agentScript(command, nonce string) []byte {
	quoted := "'" + strings.ReplaceAll(command, "'", `'\''`) + "'"
	return []byte("command eval " + quoted + "\nprintf '\\000%s;%d;%s\\000' " + nonce + ` "$?" "$PWD" >&9` + "\n")
}

// input types bytes on the terminal.
func (t *terminal) input(p []byte) error {
	t.inputMu.Lock()
	defer t.inputMu.Unlock()
	_, err := t.tty.Master.Write(p)
	return err
}

// attach makes cancel the terminal's connection, cancelling the one
// before, and returns where the new stream starts.
func (t *terminal) attach(at *attachment, offset int64) (int64, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ended {
		return 0, errdefs.New(errdefs.ErrNotFound, fmt.Sprintf("terminal %s not found", t.id))
	}
	if t.conn != nil {
		t.conn.cancel(errReplaced)
	}
	if t.timer != nil {
		t.timer.Stop()
		t.timer = nil
	}
	t.conn = at
	if offset < 0 {
		offset = t.sent
	}
	start, end := t.out.bounds()
	return min(max(offset, start), end), nil
}

// detach forgets connection cancel if it is still the attached one. A
// terminal whose exit was delivered is removed; otherwise the grace period
// starts.
func (t *terminal) detach(at *attachment, delivered bool) {
	t.mu.Lock()
	if t.conn != at {
		t.mu.Unlock()
		return
	}
	t.conn = nil
	t.mu.Unlock()
	if delivered {
		t.end()
		return
	}
	t.startGrace()
}

func (t *terminal) startGrace() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ended || t.conn != nil || t.timer != nil {
		return
	}
	t.owner.mu.Lock()
	grace := t.owner.grace
	t.owner.mu.Unlock()
	t.timer = time.AfterFunc(grace, func() {
		t.mu.Lock()
		expired := t.conn == nil && t.timer != nil
		t.mu.Unlock()
		if expired {
			t.log.Info("terminal reconnect grace passed")
			t.end()
		}
	})
}

// end kills the shell's session (if it still runs) and forgets the
// terminal.
func (t *terminal) end() {
	t.mu.Lock()
	if t.ended {
		t.mu.Unlock()
		return
	}
	t.ended = true
	t.mu.Unlock()
	t.owner.remove(t)
	select {
	case <-t.tty.Exited():
	default:
		t.tty.Kill()
	}
}

func (t *terminal) setSent(off int64, at *attachment) {
	t.mu.Lock()
	if t.conn == at {
		t.sent = off
	}
	t.mu.Unlock()
}

// ptyHandler serves GET /v1/pty: a WebSocket attached to a new terminal or,
// with ?pty_id=, to a running one. Errors found before the upgrade are
// plain JSON errors with their status.
func (a *Agent) ptyHandler(w http.ResponseWriter, r *http.Request) {
	o, err := ParsePTYQuery(r.URL.Query())
	if err != nil {
		httpjson.WriteError(w, err)
		return
	}
	var (
		t          *terminal
		id         identity
		shell, cwd string
	)
	if o.PTYID != "" {
		if t, err = a.terms.get(o.PTYID); err != nil {
			httpjson.WriteError(w, err)
			return
		}
		if o.Raw && t.mode == api.PTYModeAgent {
			httpjson.WriteError(w, errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("terminal %s is in agent mode: raw=true is for human and exec terminals", t.id)))
			return
		}
	} else {
		if id, shell, cwd, err = a.termStart(o); err != nil {
			httpjson.WriteError(w, err)
			return
		}
		// Checked again when the terminal starts; here so that the
		// common case is a 429 before the upgrade.
		if err := a.terms.checkRoom(); err != nil {
			httpjson.WriteError(w, err)
			return
		}
	}
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		// The agent is reached only through the server, which checks
		// the API key. No origin check: the key is never an ambient
		// credential (no cookie), so a cross-origin page gains nothing.
		InsecureSkipVerify: true,
		CompressionMode:    websocket.CompressionDisabled,
	})
	if err != nil {
		return // Accept answered the request
	}
	c.SetReadLimit(maxInputFrame)
	if t == nil {
		if t, err = a.startTerminal(o, id, shell, cwd); err != nil {
			closeWithError(c, err, o.Raw)
			return
		}
	}
	t.serve(c, o.Offset, o.Raw)
}

// termStart applies to a new terminal the rules of every command (see
// processSpec): its user, its working directory, and a shell, which every
// mode needs. Errors come before the upgrade, as plain 4xx answers.
func (a *Agent) termStart(o PTYOptions) (identity, string, string, error) {
	id, err := a.resolveUser(o.User)
	if err != nil {
		return identity{}, "", "", err
	}
	cwd, err := a.workdir(id, o.Cwd)
	if err != nil {
		return identity{}, "", "", err
	}
	shell, err := a.needShell()
	if err != nil {
		return identity{}, "", "", errdefs.New(errdefs.ErrInvalidArgument, `this image has no /bin/sh, which terminals need: run its programs with exec and "argv" instead`)
	}
	return id, shell, cwd, nil
}

// closeWithError sends an error message (unless the connection is raw)
// and closes the connection with 1008 and the message as its reason.
func closeWithError(c *websocket.Conn, err error, raw bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if !raw {
		code, _ := errdefs.Code(err)
		b, _ := json.Marshal(api.PTYMessage{Type: api.PTYError, Error: code, Message: httpjson.Message(err)})
		_ = c.Write(ctx, websocket.MessageText, b)
	}
	reason := httpjson.Message(err)
	if len(reason) > 120 { // a close frame holds 123 bytes of reason
		reason = reason[:120]
	}
	_ = c.Close(websocket.StatusPolicyViolation, reason)
}

// serve runs one connection: the log to the client, the client's input to
// the terminal. It returns when either side ends. A raw connection
// (PTYOptions.Raw) gets no JSON: no "open", no control messages, and the
// exit code in the reason of the normal close ("exit 3").
// writeTimeout bounds one frame's write to a terminal client.
const writeTimeout = 30 * time.Second

func (t *terminal) serve(c *websocket.Conn, offset int64, raw bool) {
	// The connection, not the HTTP request, bounds this: the terminal
	// itself outlives both.
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	at := &attachment{cancel: cancel}
	off, err := t.attach(at, offset)
	if err != nil {
		closeWithError(c, err, raw)
		return
	}
	open, _ := json.Marshal(api.PTYMessage{Type: api.PTYOpen, PTYID: t.id, Mode: t.mode, Offset: &off})
	if raw {
		t.log.Debug("raw connection attached", "offset", off)
	} else if err := c.Write(ctx, websocket.MessageText, open); err != nil {
		t.detach(at, false)
		c.CloseNow()
		return
	}
	badInput := make(chan error, 1)
	// The reader has a context of its own: coder/websocket closes the
	// connection when a Read's context ends, and a replaced or failing
	// connection must still get its close message.
	rctx, rcancel := context.WithCancel(context.Background())
	defer rcancel()
	go func() {
		for {
			typ, data, err := c.Read(rctx)
			if err != nil {
				cancel(err)
				return
			}
			if raw {
				// Stock clients send keystrokes as text frames.
				typ = websocket.MessageBinary
			}
			if err := t.handleInput(typ, data); err != nil {
				badInput <- err
				cancel(err)
				return
			}
		}
	}()

	delivered := false
	for !delivered {
		frames, next, changed, closed := t.out.read(off)
		for _, f := range frames {
			typ := websocket.MessageBinary
			if f.text {
				typ = websocket.MessageText
			}
			if f.text && raw {
				t.setSent(f.off+int64(len(f.data)), at)
				continue
			}
			// Not ctx: cancelling a Write closes the connection, and
			// bad input cancels ctx while a write may be under way —
			// the client must still get the error message. A write to
			// a client that stopped reading gives up on its own.
			wctx, wcancel := context.WithTimeout(context.Background(), writeTimeout)
			err := c.Write(wctx, typ, f.data)
			wcancel()
			if err != nil {
				cancel(err)
				break
			}
			t.setSent(f.off+int64(len(f.data)), at)
		}
		if ctx.Err() != nil {
			break
		}
		off = next
		if closed && len(frames) == 0 {
			// The exit message went out: a completed close handshake
			// means the client has everything.
			reason := "exited"
			if raw {
				reason = fmt.Sprintf("exit %d", t.tty.ExitCode())
			}
			delivered = c.Close(websocket.StatusNormalClosure, reason) == nil
			t.detach(at, delivered)
			return
		}
		if closed {
			continue // nothing more will come: close on the next round
		}
		select {
		case <-changed:
		case <-ctx.Done():
		}
	}
	select {
	case err := <-badInput:
		closeWithError(c, err, raw)
	default:
		if errors.Is(context.Cause(ctx), errReplaced) {
			_ = c.Close(websocket.StatusGoingAway, errReplaced.Error())
			return // the new connection owns the terminal now
		}
		c.CloseNow()
	}
	t.detach(at, false)
}

// handleInput applies one client frame. Errors are the client's fault and
// end the connection (not the terminal).
func (t *terminal) handleInput(typ websocket.MessageType, data []byte) error {
	if typ == websocket.MessageBinary {
		if err := t.input(data); err != nil {
			return fmt.Errorf("terminal input: %v: %w", err, errdefs.ErrFailedPrecondition)
		}
		return nil
	}
	var m api.PTYMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return errdefs.New(errdefs.ErrInvalidArgument, "control frame is not a JSON object: "+err.Error())
	}
	switch m.Type {
	case api.PTYResize:
		cols, err := CheckTermSize(m.Cols)
		if err != nil {
			return errdefs.New(errdefs.ErrInvalidArgument, "resize cols: "+err.Error())
		}
		rows, err := CheckTermSize(m.Rows)
		if err != nil {
			return errdefs.New(errdefs.ErrInvalidArgument, "resize rows: "+err.Error())
		}
		if err := t.tty.Resize(cols, rows); err != nil {
			t.log.Warn("terminal resize failed", "terminal", t.id, "cols", cols, "rows", rows, "err", err)
		}
		return nil
	case api.PTYRun:
		return t.run(m)
	case api.PTYSignal:
		sig, err := process.ParseSignal(m.Signal)
		if err != nil {
			return err
		}
		if t.mode == api.PTYModeAgent {
			// The agent-mode shell must survive: signal its commands.
			t.tty.SignalCommands(sig)
			return nil
		}
		_ = t.tty.SignalForeground(sig)
		return nil
	case "":
		return errdefs.New(errdefs.ErrInvalidArgument, `control frame has no "type" (use resize, run or signal)`)
	default:
		return errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("unknown control type %q (use resize, run or signal)", m.Type))
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
