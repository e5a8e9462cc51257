package agent

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/agent/process"
	"github.com/chaserhq/chaser/internal/errdefs"
	"github.com/chaserhq/chaser/internal/httpjson"
)

// Health is the answer of GET /v1/health.
type Health struct {
	Status   string `json:"status"`
	PID      int    `json:"pid"`
	Shell    string `json:"shell"`
	UptimeMS int64  `json:"uptime_ms"`
	// Terminals counts open terminals (also those in their reconnect
	// grace): a sandbox with one is in use.
	Terminals int `json:"terminals"`
}

// Handler returns the agent's HTTP API.
func (a *Agent) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/health", a.health)
	mux.HandleFunc("POST /v1/processes", a.startProcess)
	mux.HandleFunc("GET /v1/processes", a.listProcesses)
	mux.HandleFunc("GET /v1/processes/{id}", a.getProcess)
	mux.HandleFunc("GET /v1/processes/{id}/output", a.output)
	mux.HandleFunc("POST /v1/processes/{id}/stdin", a.stdin)
	mux.HandleFunc("POST /v1/processes/{id}/signal", a.signal)
	a.fileRoutes(mux)
	a.syncRoutes(mux)
	mux.HandleFunc("GET /v1/ports", a.listPorts)
	mux.HandleFunc("GET /v1/stats", a.stats)
	mux.HandleFunc("GET /v1/watch", a.watch)
	mux.HandleFunc("GET /v1/ports/{port}/dial", a.dial)
	mux.HandleFunc("GET /v1/pty", a.ptyHandler)
	if a.poweroff != nil {
		mux.HandleFunc("POST /v1/vm/poweroff", a.poweroffHandler)
	}
	mux.HandleFunc("POST /v1/self-test", a.selfTest)
	a.initRoutes(mux)
	return mux
}

func (a *Agent) health(w http.ResponseWriter, r *http.Request) {
	httpjson.Write(w, http.StatusOK, Health{
		Status:    "ok",
		PID:       os.Getpid(),
		Shell:     a.shell,
		UptimeMS:  time.Since(a.started).Milliseconds(),
		Terminals: a.terms.count(),
	})
}

func (a *Agent) startProcess(w http.ResponseWriter, r *http.Request) {
	var req api.ExecRequest
	if err := httpjson.Decode(w, r, &req); err != nil {
		httpjson.WriteError(w, err)
		return
	}
	spec, err := a.processSpec(req)
	if err != nil {
		httpjson.WriteError(w, err)
		return
	}
	if req.Stdin != nil {
		spec.Stdin = []byte(*req.Stdin)
	}
	if req.StdinOpen != nil {
		spec.StdinOpen = *req.StdinOpen
	}
	p, err := a.procs.Start(spec)
	if err != nil {
		httpjson.WriteError(w, err)
		return
	}
	if r.URL.Query().Get("follow") == "1" {
		// Start and follow in one round trip (the server's foreground
		// exec): the command's id in a header, then its NDJSON events
		// from the first byte on, paced by this reader, as GET
		// .../output?follow=1&pace=1&format=ndjson would give them.
		w.Header().Set(HeaderCommandID, p.ID)
		a.stream(w, r, p, 0, true, true, true)
		return
	}
	httpjson.Write(w, http.StatusCreated, p.Info())
}

// HeaderCommandID carries the id of the command that POST
// /v1/processes?follow=1 started, ahead of its events.
const HeaderCommandID = "X-Command-Id"

// processSpec applies the rules every command follows: who it runs as
// and where (see identity.go), and that a command line needs a shell
// while argv does not.
func (a *Agent) processSpec(req api.ExecRequest) (process.Spec, error) {
	if (strings.TrimSpace(req.Command) == "") == (len(req.Argv) == 0) {
		return process.Spec{}, errdefs.New(errdefs.ErrInvalidArgument, `send exactly one of "command" (a command line for the shell) and "argv" (a program and its arguments, no shell)`)
	}
	id, err := a.resolveUser(req.User)
	if err != nil {
		return process.Spec{}, err
	}
	cwd, err := a.workdir(id, req.Cwd)
	if err != nil {
		return process.Spec{}, err
	}
	spec := process.Spec{
		User:       id.user,
		Command:    req.Command,
		Argv:       req.Argv,
		Cwd:        cwd,
		Env:        a.commandEnv(id, req.Env),
		Timeout:    time.Duration(req.TimeoutMS) * time.Millisecond,
		Background: req.Background,
		// A foreground command's caller reads every byte (see Spec.Paced).
		Paced: !req.Background,
	}
	if len(req.Argv) > 0 {
		if req.Argv[0] == "" {
			return process.Spec{}, errdefs.New(errdefs.ErrInvalidArgument, "argv[0] is empty: it names the program to run")
		}
		if !strings.Contains(req.Argv[0], "/") && process.LookPath(req.Argv[0], spec.Env) == "" {
			return process.Spec{}, errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("argv[0] %q: not found on the PATH of the sandbox (%s)", req.Argv[0], envMap(spec.Env)["PATH"]))
		}
	} else if spec.Shell, err = a.needShell(); err != nil {
		return process.Spec{}, err
	}
	return spec, nil
}

func (a *Agent) process(w http.ResponseWriter, r *http.Request) (*process.Process, bool) {
	p, err := a.procs.Get(r.PathValue("id"))
	if err != nil {
		httpjson.WriteError(w, err)
		return nil, false
	}
	return p, true
}

func (a *Agent) getProcess(w http.ResponseWriter, r *http.Request) {
	if p, ok := a.process(w, r); ok {
		httpjson.Write(w, http.StatusOK, p.Info())
	}
}

// output streams a process's output from ?offset=N (default 0). With
// ?follow=1 it keeps streaming until the process ends. ?format=ndjson gives
// api.Event lines (stdout/stderr separated, an exit event last when the
// process has ended); the default is the raw combined bytes.
//
// Bytes the reader asked for but that are no longer kept are never skipped
// silently: NDJSON gets a "gap" event with their range (and
// output_truncated on the exit event); raw output says where it starts in
// X-Output-Start and, when it falls behind later, ends at the gap with the
// trailer X-Output-Gap: FROM-TO. With ?pace=1 (the caller of a foreground
// command) the reader paces the command instead: nothing is dropped.
func (a *Agent) output(w http.ResponseWriter, r *http.Request) {
	p, ok := a.process(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	var off int64
	if s := q.Get("offset"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			httpjson.WriteError(w, errdefs.New(errdefs.ErrInvalidArgument, "offset must be a non-negative integer"))
			return
		}
		off = n
	}
	follow := q.Get("follow") == "1" || q.Get("follow") == "true"
	ndjson := q.Get("format") == "ndjson"
	switch q.Get("format") {
	case "", "raw", "ndjson":
	default:
		httpjson.WriteError(w, errdefs.New(errdefs.ErrInvalidArgument, "format must be raw or ndjson"))
		return
	}
	a.stream(w, r, p, off, follow, ndjson, q.Get("pace") == "1")
}

// stream answers p's output from off (see output).
func (a *Agent) stream(w http.ResponseWriter, r *http.Request, p *process.Process, off int64, follow, ndjson, paced bool) {
	if paced {
		// Whatever way this reader leaves, the command is no longer
		// held back.
		defer p.Output.Unpace()
	}
	pace := func(off int64) {
		if paced {
			p.Output.Ack(off)
		}
	}
	if ndjson {
		w.Header().Set("Content-Type", "application/x-ndjson")
	} else {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Trailer", "X-Output-Gap")
	}
	// Read Done before the output: if the process was done, the log was
	// complete too, so nothing is missed before the exit event.
	exited := p.Exited()
	chunks, next, changed, _ := p.Output.Read(off)
	start := off
	if len(chunks) > 0 && chunks[0].Off > off {
		start = chunks[0].Off
	}
	w.Header().Set("X-Output-Start", strconv.FormatInt(start, 10))
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	enc := json.NewEncoder(w)
	truncated := false
	for first := true; ; first = false {
		if !first {
			exited = p.Exited()
			chunks, next, changed, _ = p.Output.Read(off)
		}
		if len(chunks) > 0 && chunks[0].Off > off {
			gap := chunks[0].Off - off
			truncated = true
			if !ndjson && !first {
				w.Header().Set("X-Output-Gap", fmt.Sprintf("%d-%d", off, chunks[0].Off))
				return
			}
			if ndjson {
				if err := enc.Encode(api.Event{Type: "gap", Offset: &off, Size: gap}); err != nil {
					return
				}
			}
		}
		off = next
		for _, c := range chunks {
			var err error
			if ndjson {
				err = enc.Encode(chunkEvent(c))
			} else {
				_, err = w.Write(c.Data)
			}
			if err != nil {
				return
			}
		}
		pace(off)
		if exited {
			if ndjson {
				ev := exitEvent(p.Info())
				ev.OutputTruncated = truncated
				_ = enc.Encode(ev)
			}
			return
		}
		if !follow {
			return
		}
		_ = rc.Flush()
		select {
		case <-changed:
		case <-p.Done():
		case <-r.Context().Done():
			return
		}
	}
}

func chunkEvent(c process.Chunk) api.Event {
	ev := api.Event{Type: c.Stream.String()}
	if utf8.Valid(c.Data) {
		ev.Data = string(c.Data)
	} else {
		ev.Data = base64.StdEncoding.EncodeToString(c.Data)
		ev.Encoding = "base64"
	}
	return ev
}

func exitEvent(c api.Command) api.Event {
	return api.Event{Type: "exit", ExitCode: c.ExitCode, TimedOut: c.TimedOut, Signal: c.Signal}
}

func (a *Agent) stdin(w http.ResponseWriter, r *http.Request) {
	p, ok := a.process(w, r)
	if !ok {
		return
	}
	var req api.StdinRequest
	if err := httpjson.Decode(w, r, &req); err != nil {
		httpjson.WriteError(w, err)
		return
	}
	data, err := DecodeData(req.Data, req.Encoding)
	if err != nil {
		httpjson.WriteError(w, err)
		return
	}
	if err := p.WriteStdin(data, req.EOF); err != nil {
		httpjson.WriteError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *Agent) signal(w http.ResponseWriter, r *http.Request) {
	p, ok := a.process(w, r)
	if !ok {
		return
	}
	var req api.SignalRequest
	if err := httpjson.Decode(w, r, &req); err != nil {
		httpjson.WriteError(w, err)
		return
	}
	sig, err := process.ParseSignal(req.Signal)
	if err != nil {
		httpjson.WriteError(w, err)
		return
	}
	if err := p.Signal(sig); err != nil {
		httpjson.WriteError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// DecodeData decodes text or base64 data of a request.
func DecodeData(data, encoding string) ([]byte, error) {
	switch encoding {
	case "", "utf-8", "text":
		return []byte(data), nil
	case "base64":
		b, err := base64.StdEncoding.DecodeString(data)
		if err != nil {
			return nil, errdefs.New(errdefs.ErrInvalidArgument, "data is not valid base64")
		}
		return b, nil
	default:
		return nil, errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("unknown encoding %q (use base64 or leave it out)", encoding))
	}
}

// mergeEnv returns base with the variables of extra set (replacing any of
// the same name).
func mergeEnv(base []string, extra map[string]string) []string {
	if len(extra) == 0 {
		return base
	}
	out := make([]string, 0, len(base)+len(extra))
	for _, kv := range base {
		name, _, _ := strings.Cut(kv, "=")
		if _, ok := extra[name]; !ok {
			out = append(out, kv)
		}
	}
	for k, v := range extra {
		out = append(out, k+"="+v)
	}
	return out
}
