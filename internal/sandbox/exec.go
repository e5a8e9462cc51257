package sandbox

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/agent"
	"github.com/chaserhq/chaser/internal/errdefs"
	"github.com/chaserhq/chaser/internal/store"
)

// Exec limits.
const (
	// DefaultCwd is where commands run unless told otherwise and the image
	// names no WorkingDir. The agent applies the default (it knows the
	// image's), so requests without cwd reach it empty.
	DefaultCwd = agent.DefaultCwd
	// MaxTimeout bounds timeout_ms.
	MaxTimeout = 24 * time.Hour
	// MaxArgLen is the longest single argument or environment entry the
	// kernel takes (MAX_ARG_STRLEN, 32 pages, less the final NUL): the
	// command runs as one argument of bash -c.
	MaxArgLen = 32*4096 - 1
	// MaxSyncOutput bounds stdout and stderr of a synchronous exec answer,
	// each; beyond it output is dropped and output_truncated is set.
	MaxSyncOutput = 4 << 20
)

// validateExec checks an exec request and fills in defaults.
func validateExec(req *api.ExecRequest) error {
	switch {
	case strings.TrimSpace(req.Command) == "" && len(req.Argv) == 0:
		return errdefs.New(errdefs.ErrInvalidArgument, `"command" (a command line) or "argv" (a program and its arguments, run without a shell) is required`)
	case req.Command != "" && len(req.Argv) > 0:
		return errdefs.New(errdefs.ErrInvalidArgument, `send "command" or "argv", not both`)
	case len(req.Argv) > 0 && req.Argv[0] == "":
		return errdefs.New(errdefs.ErrInvalidArgument, "argv[0] is empty: it names the program to run")
	}
	if err := CheckUser(req.User); err != nil {
		return err
	}
	// The kernel takes C strings: a NUL cannot pass, and would cut.
	if strings.ContainsRune(req.Command, 0) {
		return errdefs.New(errdefs.ErrInvalidArgument, "command contains a NUL byte, which no command line can carry; send binary data on stdin")
	}
	if len(req.Command) > MaxArgLen {
		return errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("command is %d bytes, over the kernel's limit of %d for one argument; send a longer script on stdin (bash -s) or as a file", len(req.Command), MaxArgLen))
	}
	if strings.ContainsRune(req.Cwd, 0) {
		return errdefs.New(errdefs.ErrInvalidArgument, "cwd contains a NUL byte")
	}
	if req.Cwd != "" && !path.IsAbs(req.Cwd) {
		return errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("cwd %q must be an absolute path", req.Cwd))
	}
	// Compared in milliseconds: a huge timeout_ms overflows a Duration
	// and would kill the command at once.
	if req.TimeoutMS < 0 || req.TimeoutMS > MaxTimeout.Milliseconds() {
		return errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("timeout_ms must be between 0 (none) and %d (24 h)", MaxTimeout.Milliseconds()))
	}
	for k, v := range req.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("env name %q is not valid", k))
		}
		if strings.ContainsRune(v, 0) {
			return errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("env %s contains a NUL byte, which no environment can carry", k))
		}
		if len(k)+1+len(v) > MaxArgLen {
			return errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("env %s is %d bytes, over the kernel's limit of %d for one variable", k, len(k)+1+len(v), MaxArgLen))
		}
	}
	if req.Background && req.Stream {
		return errdefs.New(errdefs.ErrInvalidArgument, "background and stream cannot be used together")
	}
	return nil
}

// Start starts a command in one of the account's sessions and returns it.
func (s *Service) Start(ctx context.Context, acct store.Account, id string, req api.ExecRequest) (api.Command, error) {
	c, _, err := s.prepare(ctx, acct, id, &req)
	if err != nil {
		return api.Command{}, err
	}
	return c.Start(ctx, req)
}

// prepare checks a command for a session, fills in its defaults, counts it,
// and returns the session's agent and record (looked up once per command).
func (s *Service) prepare(ctx context.Context, acct store.Account, id string, req *api.ExecRequest) (*agent.Client, store.Session, error) {
	if req.Workspace != "" || req.Ephemeral || req.Image != "" {
		return nil, store.Session{}, errdefs.New(errdefs.ErrInvalidArgument, "workspace, ephemeral and image cannot be given for a session: the session fixes where the command runs")
	}
	if err := validateExec(req); err != nil {
		return nil, store.Session{}, err
	}
	c, x, err := s.Agent(ctx, acct, id)
	if err != nil {
		return nil, x, err
	}
	if req.Background && req.Stdin == nil && req.StdinOpen == nil {
		open := true
		req.StdinOpen = &open
	}
	kind := "sync"
	switch {
	case req.Background:
		kind = "background"
	case req.Stream:
		kind = "stream"
	}
	s.cfg.Metrics.Commands.WithLabelValues(kind).Inc()
	return c, x, nil
}

// Run starts a command in a session and calls emit for each output event,
// then for the exit event, in order. If ctx ends first (the client went
// away), the command's process group is killed: a foreground command does
// not outlive its caller. Background commands use Start instead.
func (s *Service) Run(ctx context.Context, acct store.Account, id string, req api.ExecRequest, emit func(api.Event) error) (api.Command, error) {
	cmd, _, err := s.run(ctx, acct, id, req, emit)
	return cmd, err
}

// run is Run that also returns the session's record (as it was when the
// command started). It starts the command and opens its events in one
// round trip to the agent (agent.Client.Run); the command it returns
// carries only the id.
func (s *Service) run(ctx context.Context, acct store.Account, id string, req api.ExecRequest, emit func(api.Event) error) (api.Command, store.Session, error) {
	req.Background = false
	c, x, err := s.prepare(ctx, acct, id, &req)
	if err != nil {
		return api.Command{}, x, err
	}
	release, err := s.starts.acquire(ctx)
	if err != nil {
		return api.Command{}, x, err
	}
	cid, events, err := c.Run(ctx, req)
	cmd := api.Command{ID: cid}
	if err == nil {
		err = readEvents(ctx, events, cid, emit)
	}
	release()
	if err != nil && cid != "" {
		kctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_ = c.Signal(kctx, cmd.ID, "KILL")
		cancel()
		// The output broke off because the session ended under the
		// command (its agent hung, its sandbox died): say so.
		if x, serr := s.session(context.WithoutCancel(ctx), acct, id); ctx.Err() == nil && serr == nil && ended(x) {
			err = endedError(x)
		}
	}
	return cmd, x, err
}

// follow streams a command's events from its start until its exit event.
func follow(ctx context.Context, c *agent.Client, cid string, emit func(api.Event) error) error {
	resp, err := c.Output(ctx, cid, 0, true, true, "ndjson")
	if err != nil {
		return err
	}
	return readEvents(ctx, resp, cid, emit)
}

// eventBuffers are the first buffers of readEvents' scanners.
var eventBuffers = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// readEvents passes the events of command cid in resp to emit until the
// exit event, and closes resp.
func readEvents(ctx context.Context, resp *http.Response, cid string, emit func(api.Event) error) error {
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	// The first buffer is reused: a fresh 64 KiB per command was 81% of
	// the bytes the server allocated while running commands back to back.
	// Events are decoded into copies, so nothing refers to it afterwards.
	buf := eventBuffers.Get().(*[]byte)
	defer eventBuffers.Put(buf)
	sc.Buffer(*buf, 16<<20)
	for sc.Scan() {
		var ev api.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return fmt.Errorf("agent event: %w", err)
		}
		if err := emit(ev); err != nil {
			return err
		}
		if ev.Type == "exit" {
			return nil
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("sandbox agent ended the output of %s early: %w", cid, errdefs.ErrUnavailable)
}

// Exec runs a command to completion in a session and collects its output.
func (s *Service) Exec(ctx context.Context, acct store.Account, id string, req api.ExecRequest) (api.ExecResult, error) {
	return s.ExecWatch(ctx, acct, id, req, nil)
}

// ExecWatch is Exec that also shows watch (when not nil) every event as it
// comes, e.g. to report progress of a long command.
func (s *Service) ExecWatch(ctx context.Context, acct store.Account, id string, req api.ExecRequest, watch func(api.Event)) (api.ExecResult, error) {
	start := time.Now()
	res := api.ExecResult{SessionID: id}
	var stdout, stderr strings.Builder
	cmd, x, err := s.run(ctx, acct, id, req, func(ev api.Event) error {
		if watch != nil {
			watch(ev)
		}
		var buf *strings.Builder
		switch ev.Type {
		case "stdout":
			buf = &stdout
		case "stderr":
			buf = &stderr
		case "gap":
			res.OutputTruncated = true
			return nil
		case "exit":
			if ev.ExitCode != nil {
				res.ExitCode = *ev.ExitCode
			}
			res.TimedOut = ev.TimedOut
			return nil
		default:
			return nil
		}
		data := ev.Data
		if ev.Encoding == "base64" {
			b, err := base64.StdEncoding.DecodeString(ev.Data)
			if err != nil {
				return err
			}
			data = string(b)
		}
		if room := MaxSyncOutput - buf.Len(); len(data) > room {
			data = data[:max(room, 0)]
			res.OutputTruncated = true
		}
		buf.WriteString(data)
		return nil
	})
	res.CommandID = cmd.ID
	if err != nil {
		return res, err
	}
	res.Stdout, res.Stderr = stdout.String(), stderr.String()
	res.DurationMS = time.Since(start).Milliseconds()
	res.WorkspaceID = x.WorkspaceID
	return res, nil
}

// ExecTargetless runs a command for POST /v1/exec, in the session the
// request resolves to (see Create): a throwaway sandbox (of req.Image when
// given, even on the paid tier: a workspace fixes its image), destroyed
// afterwards, or a workspace's session, which stays.
func (s *Service) ExecTargetless(ctx context.Context, acct store.Account, req api.ExecRequest) (api.ExecResult, error) {
	if req.Background || req.Stream {
		return api.ExecResult{}, errdefs.New(errdefs.ErrInvalidArgument, "background and stream need a session: create one (POST /v1/sessions) and use POST /v1/sessions/{id}/exec")
	}
	if err := validateExec(&req); err != nil {
		return api.ExecResult{}, err
	}
	sess, _, err := s.Create(ctx, acct, api.CreateSessionRequest{Type: api.SessionTypeSandbox, Workspace: req.Workspace, Ephemeral: req.Ephemeral, Image: req.Image})
	if err != nil {
		return api.ExecResult{}, err
	}
	if sess.Ephemeral {
		defer func() {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			if err := s.forget(dctx, sess.ID); err != nil {
				s.log.Error("destroy ephemeral exec sandbox", "session_id", sess.ID, "err", err)
			}
		}()
	}
	req.Workspace, req.Ephemeral, req.Image = "", false, ""
	return s.Exec(ctx, acct, sess.ID, req)
}
