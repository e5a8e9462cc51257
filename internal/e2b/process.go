package e2b

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"connectrpc.com/connect"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/agent"
	"github.com/chaserhq/chaser/internal/e2b/spec/process"
	"github.com/chaserhq/chaser/internal/e2b/spec/process/processconnect"
	"github.com/chaserhq/chaser/internal/errdefs"
	"github.com/chaserhq/chaser/internal/sandbox"
)

// processService serves process.Process over Chaser's commands: every
// process is a background command of the session (it outlives the stream
// that started it, as envd's do), addressed by its pid in the sandbox.
type processService struct {
	processconnect.UnimplementedProcessHandler
	h *Handler
}

var _ processconnect.ProcessHandler = (*processService)(nil)

// keepalive is how often a stream sends a keepalive event: the client's
// Keepalive-Ping-Interval (seconds), else 50 s.
func keepalive(hdr http.Header) time.Duration {
	if n, err := strconv.Atoi(hdr.Get("Keepalive-Ping-Interval")); err == nil && n > 0 {
		return time.Duration(n) * time.Second
	}
	return 50 * time.Second
}

func (p *processService) Start(ctx context.Context, req *connect.Request[process.StartRequest], stream *connect.ServerStream[process.StartResponse]) error {
	t, err := p.h.target(ctx, req.Header())
	if err != nil {
		return p.h.connectError(err)
	}
	cfg := req.Msg.GetProcess()
	if cfg == nil || cfg.GetCmd() == "" {
		return p.h.connectError(errdefs.New(errdefs.ErrInvalidArgument, "process.cmd is required"))
	}
	send := func(ev *process.ProcessEvent) error { return stream.Send(&process.StartResponse{Event: ev}) }
	if req.Msg.Pty != nil {
		return p.h.connectError(p.h.startPTY(ctx, t, req.Msg, send, keepalive(req.Header())))
	}
	stdin := req.Msg.Stdin == nil || req.Msg.GetStdin()
	cmd, err := p.h.sandboxes.Start(ctx, t.acct, t.id, api.ExecRequest{
		Argv: append([]string{cfg.GetCmd()}, cfg.GetArgs()...), Env: t.env(cfg.GetEnvs()), Cwd: cfg.GetCwd(),
		User: t.user, Background: true, StdinOpen: &stdin, TimeoutMS: deadlineMS(ctx),
	})
	if err != nil {
		return p.h.connectError(err)
	}
	if tag := req.Msg.GetTag(); tag != "" {
		// Kept in the session's record, so it outlives a restart.
		err := p.h.updateRecord(ctx, &t, func(rec *record) error {
			if _, ok := rec.Tags[tag]; !ok && len(rec.Tags) >= maxTags {
				return errdefs.New(errdefs.ErrResourceExhausted, fmt.Sprintf("this sandbox has %d process tags, the most kept", maxTags))
			}
			if rec.Tags == nil {
				rec.Tags = map[string]string{}
			}
			rec.Tags[tag] = cmd.ID
			return nil
		})
		if err != nil {
			p.h.log.Warn("keep a process tag", "session_id", t.id, "err", err)
		}
	}
	if err := send(startEvent(cmd.PID)); err != nil {
		return err
	}
	return p.h.connectError(p.h.stream(ctx, t, cmd.ID, send, keepalive(req.Header())))
}

// deadlineMS is what is left of the request's Connect-Timeout-Ms (the
// SDK's timeoutMs), as the command's timeout: as in envd, the process is
// killed when it elapses, not only the stream. 0: no deadline.
func deadlineMS(ctx context.Context) int64 {
	d, ok := ctx.Deadline()
	if !ok {
		return 0
	}
	return min(max(time.Until(d).Milliseconds(), 1), sandbox.MaxTimeout.Milliseconds())
}

func startEvent(pid int) *process.ProcessEvent {
	return &process.ProcessEvent{Event: &process.ProcessEvent_Start{Start: &process.ProcessEvent_StartEvent{Pid: uint32(pid)}}}
}

// stream sends command cid's output and end as process events, with
// keepalives, until it ends or the client goes away (which leaves the
// command running).
func (h *Handler) stream(ctx context.Context, t target, cid string, send func(*process.ProcessEvent) error, every time.Duration) error {
	var mu sync.Mutex // send is not safe for concurrent use
	locked := func(ev *process.ProcessEvent) error {
		mu.Lock()
		defer mu.Unlock()
		return send(ev)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				if locked(&process.ProcessEvent{Event: &process.ProcessEvent_Keepalive{Keepalive: &process.ProcessEvent_KeepAlive{}}}) != nil {
					cancel()
					return
				}
			}
		}
	}()
	return h.sandboxes.Follow(ctx, t.acct, t.id, cid, func(ev api.Event) error {
		switch ev.Type {
		case "stdout", "stderr":
			data := []byte(ev.Data)
			if ev.Encoding == "base64" {
				b, err := base64.StdEncoding.DecodeString(ev.Data)
				if err != nil {
					return err
				}
				data = b
			}
			d := &process.ProcessEvent_DataEvent{Output: &process.ProcessEvent_DataEvent_Stdout{Stdout: data}}
			if ev.Type == "stderr" {
				d.Output = &process.ProcessEvent_DataEvent_Stderr{Stderr: data}
			}
			return locked(&process.ProcessEvent{Event: &process.ProcessEvent_Data{Data: d}})
		case "exit":
			return locked(endEvent(ev))
		}
		return nil
	})
}

// endEvent is envd's end event for Chaser's exit event.
func endEvent(ev api.Event) *process.ProcessEvent {
	end := &process.ProcessEvent_EndEvent{Exited: true}
	switch {
	case ev.Signal != "":
		end.ExitCode, end.Exited, end.Status = -1, false, "signal: "+ev.Signal
	case ev.ExitCode != nil:
		end.ExitCode, end.Status = int32(*ev.ExitCode), "exit status "+strconv.Itoa(*ev.ExitCode)
	}
	if ev.TimedOut {
		msg := "the command reached its timeout"
		end.Error = &msg
	}
	return &process.ProcessEvent{Event: &process.ProcessEvent_End{End: end}}
}

// command finds the command a selector names: by pid (or tag) among the
// session's commands, running ones first.
func (h *Handler) command(ctx context.Context, t target, sel *process.ProcessSelector) (*agent.Client, api.Command, error) {
	c, _, err := h.sandboxes.Agent(ctx, t.acct, t.id)
	if err != nil {
		return nil, api.Command{}, err
	}
	pid := int(sel.GetPid())
	cid := ""
	if tag := sel.GetTag(); tag != "" {
		if cid = t.rec.Tags[tag]; cid == "" {
			return nil, api.Command{}, errdefs.New(errdefs.ErrNotFound, fmt.Sprintf("process with tag %q not found", tag))
		}
	}
	var found *api.Command
	q := agent.CommandQuery{}
	for {
		page, err := c.Commands(ctx, q)
		if err != nil {
			return nil, api.Command{}, err
		}
		for i, cmd := range page.Commands {
			if cid != "" && cmd.ID == cid || cid == "" && cmd.PID == pid && (found == nil || cmd.Status == api.CommandRunning) {
				found = &page.Commands[i]
			}
		}
		if q.NextToken = page.NextToken; q.NextToken == "" {
			break
		}
	}
	if found == nil && cid != "" {
		return nil, api.Command{}, errdefs.New(errdefs.ErrNotFound, fmt.Sprintf("process with tag %q not found", sel.GetTag()))
	}
	if found == nil {
		return nil, api.Command{}, errdefs.New(errdefs.ErrNotFound, fmt.Sprintf("process with pid %d not found", pid))
	}
	return c, *found, nil
}

func (p *processService) Connect(ctx context.Context, req *connect.Request[process.ConnectRequest], stream *connect.ServerStream[process.ConnectResponse]) error {
	t, err := p.h.target(ctx, req.Header())
	if err != nil {
		return p.h.connectError(err)
	}
	send := func(ev *process.ProcessEvent) error { return stream.Send(&process.ConnectResponse{Event: ev}) }
	if pt := p.h.terminal(ctx, t, req.Msg.GetProcess().GetPid()); pt != nil {
		return p.h.connectError(pt.attach(ctx, send, keepalive(req.Header())))
	}
	_, cmd, err := p.h.command(ctx, t, req.Msg.GetProcess())
	if err != nil {
		return p.h.connectError(err)
	}
	if err := send(startEvent(cmd.PID)); err != nil {
		return err
	}
	return p.h.connectError(p.h.stream(ctx, t, cmd.ID, send, keepalive(req.Header())))
}

func (p *processService) List(ctx context.Context, req *connect.Request[process.ListRequest]) (*connect.Response[process.ListResponse], error) {
	t, err := p.h.target(ctx, req.Header())
	if err != nil {
		return nil, p.h.connectError(err)
	}
	c, _, err := p.h.sandboxes.Agent(ctx, t.acct, t.id)
	if err != nil {
		return nil, p.h.connectError(err)
	}
	tagOf := map[string]string{}
	for tag, cid := range t.rec.Tags {
		tagOf[cid] = tag
	}
	out := &process.ListResponse{}
	q := agent.CommandQuery{Status: api.CommandRunning}
	for {
		page, err := c.Commands(ctx, q)
		if err != nil {
			return nil, p.h.connectError(err)
		}
		for _, cmd := range page.Commands {
			info := &process.ProcessInfo{Pid: uint32(cmd.PID), Config: &process.ProcessConfig{Cmd: cmd.Command, Cwd: &cmd.Cwd}}
			if tag := tagOf[cmd.ID]; tag != "" {
				info.Tag = &tag
			}
			out.Processes = append(out.Processes, info)
		}
		if q.NextToken = page.NextToken; q.NextToken == "" {
			break
		}
	}
	p.h.reattachAll(ctx, t)
	out.Processes = append(out.Processes, p.h.ptys.list(t.id)...)
	return connect.NewResponse(out), nil
}

func (p *processService) SendInput(ctx context.Context, req *connect.Request[process.SendInputRequest]) (*connect.Response[process.SendInputResponse], error) {
	t, err := p.h.target(ctx, req.Header())
	if err != nil {
		return nil, p.h.connectError(err)
	}
	in := req.Msg.GetInput()
	if pt := p.h.terminal(ctx, t, req.Msg.GetProcess().GetPid()); pt != nil {
		data := in.GetPty()
		if data == nil {
			data = in.GetStdin()
		}
		return connect.NewResponse(&process.SendInputResponse{}), p.h.connectError(pt.input(ctx, data))
	}
	c, cmd, err := p.h.command(ctx, t, req.Msg.GetProcess())
	if err != nil {
		return nil, p.h.connectError(err)
	}
	err = c.Stdin(ctx, cmd.ID, api.StdinRequest{Data: base64.StdEncoding.EncodeToString(in.GetStdin()), Encoding: "base64"})
	if err != nil {
		return nil, p.h.connectError(err)
	}
	return connect.NewResponse(&process.SendInputResponse{}), nil
}

func (p *processService) CloseStdin(ctx context.Context, req *connect.Request[process.CloseStdinRequest]) (*connect.Response[process.CloseStdinResponse], error) {
	t, err := p.h.target(ctx, req.Header())
	if err != nil {
		return nil, p.h.connectError(err)
	}
	c, cmd, err := p.h.command(ctx, t, req.Msg.GetProcess())
	if err != nil {
		return nil, p.h.connectError(err)
	}
	if err := c.Stdin(ctx, cmd.ID, api.StdinRequest{EOF: true}); err != nil {
		return nil, p.h.connectError(err)
	}
	return connect.NewResponse(&process.CloseStdinResponse{}), nil
}

func (p *processService) SendSignal(ctx context.Context, req *connect.Request[process.SendSignalRequest]) (*connect.Response[process.SendSignalResponse], error) {
	t, err := p.h.target(ctx, req.Header())
	if err != nil {
		return nil, p.h.connectError(err)
	}
	var sig string
	switch req.Msg.GetSignal() {
	case process.Signal_SIGNAL_SIGKILL:
		sig = "KILL"
	case process.Signal_SIGNAL_SIGTERM:
		sig = "TERM"
	default:
		return nil, p.h.connectError(errdefs.New(errdefs.ErrInvalidArgument, "signal must be SIGTERM or SIGKILL"))
	}
	if pt := p.h.terminal(ctx, t, req.Msg.GetProcess().GetPid()); pt != nil {
		return connect.NewResponse(&process.SendSignalResponse{}), p.h.connectError(pt.signal(ctx, sig))
	}
	c, cmd, err := p.h.command(ctx, t, req.Msg.GetProcess())
	if err != nil {
		return nil, p.h.connectError(err)
	}
	if cmd.Status != api.CommandRunning {
		return nil, p.h.connectError(errdefs.New(errdefs.ErrNotFound, fmt.Sprintf("process with pid %d is not running", cmd.PID)))
	}
	if err := c.Signal(ctx, cmd.ID, sig); err != nil {
		return nil, p.h.connectError(err)
	}
	return connect.NewResponse(&process.SendSignalResponse{}), nil
}

func (p *processService) Update(ctx context.Context, req *connect.Request[process.UpdateRequest]) (*connect.Response[process.UpdateResponse], error) {
	t, err := p.h.target(ctx, req.Header())
	if err != nil {
		return nil, p.h.connectError(err)
	}
	pt := p.h.terminal(ctx, t, req.Msg.GetProcess().GetPid())
	if pt == nil {
		return nil, p.h.connectError(errdefs.New(errdefs.ErrNotFound, fmt.Sprintf("terminal with pid %d not found", req.Msg.GetProcess().GetPid())))
	}
	if size := req.Msg.GetPty().GetSize(); size != nil {
		if err := pt.resize(ctx, size.GetCols(), size.GetRows()); err != nil {
			return nil, p.h.connectError(err)
		}
	}
	return connect.NewResponse(&process.UpdateResponse{}), nil
}
