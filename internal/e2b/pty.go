package e2b

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/agent"
	"github.com/chaserhq/chaser/internal/e2b/spec/process"
	"github.com/chaserhq/chaser/internal/errdefs"
)

// Terminals (process.Start with pty) are the agent's terminals, reached
// over the same WebSocket as GET /v1/sessions/{id}/pty in exec mode. The
// server holds that connection for the terminal's life: it outlives the
// stream that started it, as envd's do, and SendInput, Update and Connect
// find it by its pid.

// ptyPIDBase starts the pids the front end gives terminals: the agent's
// terminal has no pid of its own on the wire, and these cannot meet a
// command's pid (Linux pids stay below 2^22).
const ptyPIDBase = 1 << 24

var ptyPIDs atomic.Uint32

type ptyTable struct {
	mu  sync.Mutex
	all map[string]map[uint32]*terminal // session → pid → terminal
}

func (t *ptyTable) add(p *terminal) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.all == nil {
		t.all = map[string]map[uint32]*terminal{}
	}
	if t.all[p.sid] == nil {
		t.all[p.sid] = map[uint32]*terminal{}
	}
	t.all[p.sid][p.pid] = p
}

func (t *ptyTable) remove(p *terminal) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.all[p.sid], p.pid)
	if len(t.all[p.sid]) == 0 {
		delete(t.all, p.sid)
	}
}

func (t *ptyTable) get(sid string, pid uint32) *terminal {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.all[sid][pid]
}

func (t *ptyTable) list(sid string) []*process.ProcessInfo {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := []*process.ProcessInfo{}
	for _, p := range t.all[sid] {
		out = append(out, &process.ProcessInfo{Pid: p.pid, Config: &process.ProcessConfig{Cmd: p.cmd}})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Pid < out[j].Pid })
	return out
}

// terminal is one agent terminal and its listeners.
type terminal struct {
	pid  uint32
	sid  string
	cmd  string
	conn *websocket.Conn

	mu   sync.Mutex
	subs map[chan *process.ProcessEvent]bool
	end  *process.ProcessEvent // set once it ended
	done chan struct{}
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@%+=:,./-_") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'"'"'`) + "'"
}

// startPTY opens a terminal running the request's process and streams it
// to send until it ends or the client goes away.
func (h *Handler) startPTY(ctx context.Context, t target, req *process.StartRequest, send func(*process.ProcessEvent) error, every time.Duration) error {
	cfg := req.GetProcess()
	words := []string{"exec"}
	env := t.env(cfg.GetEnvs())
	if len(env) > 0 {
		words = append(words, "env")
		keys := make([]string, 0, len(env))
		for k := range env {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			words = append(words, shellQuote(k+"="+env[k]))
		}
	}
	for _, w := range append([]string{cfg.GetCmd()}, cfg.GetArgs()...) {
		words = append(words, shellQuote(w))
	}
	size := req.GetPty().GetSize()
	cols, err := agent.CheckTermSize(int(size.GetCols()))
	if err != nil {
		return errdefs.New(errdefs.ErrInvalidArgument, "pty cols: "+err.Error())
	}
	rows, err := agent.CheckTermSize(int(size.GetRows()))
	if err != nil {
		return errdefs.New(errdefs.ErrInvalidArgument, "pty rows: "+err.Error())
	}
	opts := agent.PTYOptions{Mode: api.PTYModeExec, Command: strings.Join(words, " "), Cwd: cfg.GetCwd(), User: t.user, Cols: cols, Rows: rows, Offset: -1}
	conn, ptyID, err := h.dialPTY(ctx, t, opts)
	if err != nil {
		return err
	}
	pid := uint32(0)
	for pid == 0 || t.rec.PTYs[strconv.Itoa(int(pid))].ID != "" || h.ptys.get(t.id, pid) != nil {
		pid = ptyPIDBase + ptyPIDs.Add(1)
	}
	// Kept in the session's record, so that a restarted server finds the
	// terminal again (the agent keeps it for agent.PTYGrace).
	err = h.updateRecord(ctx, &t, func(rec *record) error {
		if len(rec.PTYs) >= maxPTYs {
			return errdefs.New(errdefs.ErrResourceExhausted, "too many terminals recorded")
		}
		if rec.PTYs == nil {
			rec.PTYs = map[string]ptyRecord{}
		}
		rec.PTYs[strconv.Itoa(int(pid))] = ptyRecord{ID: ptyID, Cmd: cfg.GetCmd()}
		return nil
	})
	if err != nil {
		h.log.Warn("record a terminal", "session_id", t.id, "err", err)
	}
	p := h.addTerminal(t, pid, cfg.GetCmd(), conn)
	ch := p.subscribe()
	go p.read(func() { h.dropTerminal(t, p) })
	if err := send(startEvent(int(p.pid))); err != nil {
		p.unsubscribe(ch)
		return err
	}
	return p.pump(ctx, ch, send, every)
}

// dialPTY opens an agent terminal (or reattaches one: opts.PTYID) and
// reads its "open" message, which names it.
func (h *Handler) dialPTY(ctx context.Context, t target, opts agent.PTYOptions) (*websocket.Conn, string, error) {
	c, _, err := h.sandboxes.Agent(ctx, t.acct, t.id)
	if err != nil {
		return nil, "", err
	}
	// The terminal outlives this request: its connection is dialled with
	// a context of its own.
	conn, resp, err := websocket.Dial(context.WithoutCancel(ctx), "ws://agent/v1/pty?"+opts.Query().Encode(),
		&websocket.DialOptions{HTTPClient: &http.Client{Transport: c.Transport()}})
	if err != nil {
		if resp != nil && resp.StatusCode == http.StatusNotFound {
			return nil, "", errdefs.New(errdefs.ErrNotFound, "the terminal has ended")
		}
		if resp != nil && resp.StatusCode >= 400 {
			return nil, "", errdefs.New(errdefs.ErrInvalidArgument, "the sandbox refused the terminal: "+resp.Status)
		}
		return nil, "", errdefs.New(errdefs.ErrUnavailable, "sandbox agent unreachable: "+err.Error())
	}
	conn.SetReadLimit(1 << 20)
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	typ, data, err := conn.Read(rctx)
	var m api.PTYMessage
	if err != nil || typ != websocket.MessageText || json.Unmarshal(data, &m) != nil || m.Type != api.PTYOpen || m.PTYID == "" {
		conn.CloseNow()
		if err != nil {
			return nil, "", errdefs.New(errdefs.ErrUnavailable, "the sandbox's terminal did not open: "+err.Error())
		}
		return nil, "", errdefs.New(errdefs.ErrUnavailable, "the sandbox's terminal did not open with an open message")
	}
	return conn, m.PTYID, nil
}

func (h *Handler) addTerminal(t target, pid uint32, cmd string, conn *websocket.Conn) *terminal {
	p := &terminal{pid: pid, sid: t.id, cmd: cmd, conn: conn,
		subs: map[chan *process.ProcessEvent]bool{}, done: make(chan struct{})}
	h.ptys.add(p)
	return p
}

// dropTerminal forgets a terminal that ended, in memory and in the record.
func (h *Handler) dropTerminal(t target, p *terminal) {
	h.ptys.remove(p)
	h.forgetTerminal(t, p.pid)
}

func (h *Handler) forgetTerminal(t target, pid uint32) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	key := strconv.Itoa(int(pid))
	_ = h.updateRecord(ctx, &t, func(rec *record) error {
		delete(rec.PTYs, key)
		return nil
	})
}

// terminal returns the terminal pid of t's sandbox: the server's, or,
// after a restart, the recorded one reattached (nil when there is none,
// or it ended).
func (h *Handler) terminal(ctx context.Context, t target, pid uint32) *terminal {
	if p := h.ptys.get(t.id, pid); p != nil {
		return p
	}
	r, ok := t.rec.PTYs[strconv.Itoa(int(pid))]
	if !ok {
		return nil
	}
	h.reattach.Lock()
	defer h.reattach.Unlock()
	if p := h.ptys.get(t.id, pid); p != nil {
		return p
	}
	conn, _, err := h.dialPTY(ctx, t, agent.PTYOptions{Mode: api.PTYModeExec, PTYID: r.ID, Cols: agent.DefaultCols, Rows: agent.DefaultRows, Offset: -1})
	if err != nil {
		if errors.Is(err, errdefs.ErrNotFound) {
			h.forgetTerminal(t, pid)
		} else {
			h.log.Warn("reattach a terminal", "session_id", t.id, "pid", pid, "err", err)
		}
		return nil
	}
	p := h.addTerminal(t, pid, r.Cmd, conn)
	go p.read(func() { h.dropTerminal(t, p) })
	return p
}

// reattachAll reattaches every recorded terminal of t's sandbox that the
// server does not hold (after a restart), so List shows the live ones.
func (h *Handler) reattachAll(ctx context.Context, t target) {
	for key := range t.rec.PTYs {
		if pid, err := strconv.Atoi(key); err == nil {
			h.terminal(ctx, t, uint32(pid))
		}
	}
}

func (p *terminal) subscribe() chan *process.ProcessEvent {
	ch := make(chan *process.ProcessEvent, 1024)
	p.mu.Lock()
	p.subs[ch] = true
	p.mu.Unlock()
	return ch
}

func (p *terminal) unsubscribe(ch chan *process.ProcessEvent) {
	p.mu.Lock()
	delete(p.subs, ch)
	p.mu.Unlock()
}

func (p *terminal) broadcast(ev *process.ProcessEvent) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for ch := range p.subs {
		select {
		case ch <- ev:
		default: // a listener too slow for the terminal loses output, not the terminal
		}
	}
}

// read forwards the terminal's frames to its listeners until it closes.
func (p *terminal) read(gone func()) {
	code := -1
	for {
		typ, data, err := p.conn.Read(context.Background())
		if err != nil {
			break
		}
		if typ == websocket.MessageBinary {
			p.broadcast(&process.ProcessEvent{Event: &process.ProcessEvent_Data{Data: &process.ProcessEvent_DataEvent{
				Output: &process.ProcessEvent_DataEvent_Pty{Pty: data}}}})
			continue
		}
		var m api.PTYMessage
		if json.Unmarshal(data, &m) == nil && m.Type == api.PTYExit && m.Code != nil {
			code = *m.Code
		}
	}
	gone()
	ec := api.Event{Type: "exit", ExitCode: &code}
	if code < 0 {
		ec = api.Event{Type: "exit", Signal: "killed"}
	}
	end := endEvent(ec)
	p.mu.Lock()
	p.end = end
	p.mu.Unlock()
	close(p.done)
	p.conn.CloseNow()
}

// attach streams the terminal to a Connect call.
func (p *terminal) attach(ctx context.Context, send func(*process.ProcessEvent) error, every time.Duration) error {
	ch := p.subscribe()
	if err := send(startEvent(int(p.pid))); err != nil {
		p.unsubscribe(ch)
		return err
	}
	return p.pump(ctx, ch, send, every)
}

// pump sends what reaches ch, keepalives, and the end.
func (p *terminal) pump(ctx context.Context, ch chan *process.ProcessEvent, send func(*process.ProcessEvent) error, every time.Duration) error {
	defer p.unsubscribe(ch)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case ev := <-ch:
			if err := send(ev); err != nil {
				return err
			}
		case <-p.done:
			for {
				select {
				case ev := <-ch:
					if err := send(ev); err != nil {
						return err
					}
					continue
				default:
				}
				break
			}
			p.mu.Lock()
			end := p.end
			p.mu.Unlock()
			return send(end)
		case <-tick.C:
			if err := send(&process.ProcessEvent{Event: &process.ProcessEvent_Keepalive{Keepalive: &process.ProcessEvent_KeepAlive{}}}); err != nil {
				return err
			}
		case <-ctx.Done():
			return nil
		}
	}
}

func (p *terminal) input(ctx context.Context, data []byte) error {
	if err := p.conn.Write(ctx, websocket.MessageBinary, data); err != nil {
		return errdefs.New(errdefs.ErrNotFound, "the terminal has ended")
	}
	return nil
}

func (p *terminal) control(ctx context.Context, m api.PTYMessage) error {
	b, _ := json.Marshal(m)
	if err := p.conn.Write(ctx, websocket.MessageText, b); err != nil {
		return errdefs.New(errdefs.ErrNotFound, "the terminal has ended")
	}
	return nil
}

func (p *terminal) resize(ctx context.Context, cols, rows uint32) error {
	if _, err := agent.CheckTermSize(int(cols)); err != nil {
		return errdefs.New(errdefs.ErrInvalidArgument, "cols: "+err.Error())
	}
	if _, err := agent.CheckTermSize(int(rows)); err != nil {
		return errdefs.New(errdefs.ErrInvalidArgument, "rows: "+err.Error())
	}
	return p.control(ctx, api.PTYMessage{Type: api.PTYResize, Cols: int(cols), Rows: int(rows)})
}

func (p *terminal) signal(ctx context.Context, sig string) error {
	return p.control(ctx, api.PTYMessage{Type: api.PTYSignal, Signal: sig})
}
