// Package mcp is the MCP front end of Chaser: POST /v1/mcp speaks the Model
// Context Protocol over streamable HTTP with the official Go SDK and offers
// the `terminal` tool. Like the HTTP handlers it is a thin adapter: targets
// are resolved by sandbox.Service, commands and files go through the same
// service.
//
// Three ways in share one tool set:
//
//   - a standard client of the session protocols (initialize, then
//     Mcp-Session-Id) gets a stateful session;
//   - a request without a session — the sessionless protocol of newer
//     clients, or the seed page's bare curl of tools/call — is served
//     statelessly: as an SSE stream when the client asks for one (so
//     progress notifications reach it), else as plain JSON;
//   - a request bearing a session id this process does not hold (the
//     server restarted) is served statelessly as well, so clients, which do
//     not re-initialize on 404, keep working.
//
// Session ids carry a tag of the account that opened them, so an id only
// ever works with its own account's key, before and after a restart.
package mcp

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/errdefs"
	"github.com/chaserhq/chaser/internal/httpjson"
	"github.com/chaserhq/chaser/internal/sandbox"
	"github.com/chaserhq/chaser/internal/store"
)

// maxBody bounds one MCP request: a write_file may carry a whole file.
const maxBody = 20 << 20

// DefaultProgressInterval is how often a tool call that carries a
// progressToken is sent notifications/progress while it runs. Clients
// time requests out after 60 s unless progress resets the timer.
const DefaultProgressInterval = 5 * time.Second

const sessionHeader = "Mcp-Session-Id"

// Server serves /v1/mcp.
type Server struct {
	svc *sandbox.Service
	log *slog.Logger
	// ProgressInterval is how often long tool calls report progress
	// (DefaultProgressInterval when zero). Set it before serving.
	ProgressInterval time.Duration

	stateful  http.Handler // sessions
	streaming http.Handler // no session, answered as SSE
	plain     http.Handler // no session, answered as JSON

	// servers holds one SDK server per account (account ID →
	// *sdk.Server): its session ids carry the account's tag.
	servers sync.Map
}

// New returns the MCP front end over svc.
func New(svc *sandbox.Service, log *slog.Logger) *Server {
	s := &Server{svc: svc, log: log.With("component", "mcp")}
	// The API key is the protection against DNS rebinding: a browser
	// cannot add it to a rebound request.
	s.stateful = sdk.NewStreamableHTTPHandler(s.server, &sdk.StreamableHTTPOptions{
		DisableLocalhostProtection: true, MaxRequestBodyBytes: maxBody, Logger: s.log,
	})
	s.streaming = sdk.NewStreamableHTTPHandler(s.server, &sdk.StreamableHTTPOptions{
		Stateless: true, DisableLocalhostProtection: true, MaxRequestBodyBytes: maxBody, Logger: s.log,
	})
	s.plain = sdk.NewStreamableHTTPHandler(s.server, &sdk.StreamableHTTPOptions{
		Stateless: true, JSONResponse: true, DisableLocalhostProtection: true, MaxRequestBodyBytes: maxBody, Logger: s.log,
	})
	return s
}

// server returns the SDK server of the request's account.
func (s *Server) server(r *http.Request) *sdk.Server {
	acct, _ := r.Context().Value(accountKey{}).(store.Account)
	if srv, ok := s.servers.Load(acct.ID); ok {
		return srv.(*sdk.Server)
	}
	tag := accountTag(acct.ID)
	srv := sdk.NewServer(&sdk.Implementation{Name: "chaser", Version: "1"}, &sdk.ServerOptions{
		Instructions: "Chaser gives you an isolated Linux sandbox. Use the terminal tool to run shell commands " +
			"and to read, write, edit and list files. Pass the session_id from a result to later calls to keep " +
			"working in the same sandbox.",
		GetSessionID: func() string { return tag + "-" + rand.Text() },
	})
	sdk.AddTool(srv, terminalTool(), s.terminal)
	actual, _ := s.servers.LoadOrStore(acct.ID, srv)
	return actual.(*sdk.Server)
}

// accountTag is the prefix of the MCP session ids of an account.
func accountTag(accountID string) string {
	sum := sha256.Sum256([]byte("chaser mcp session\x00" + accountID))
	return base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:10])
}

type accountKey struct{}

// ServeHTTP serves an authenticated request of acct.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request, acct store.Account) {
	r = r.WithContext(context.WithValue(r.Context(), accountKey{}, acct))
	// The SDK binds stateful sessions to the user that opened them; the
	// account tag of session ids does the same across restarts.
	verify := func(ctx context.Context, _ string, _ *http.Request) (*auth.TokenInfo, error) {
		return &auth.TokenInfo{UserID: acct.ID, Expiration: time.Now().Add(time.Hour), Extra: map[string]any{"account": acct}}, nil
	}
	serve := func(h http.Handler, w http.ResponseWriter) {
		auth.RequireBearerToken(verify, nil)(h).ServeHTTP(w, r)
	}
	wantsStream := strings.Contains(r.Header.Get("Accept"), "text/event-stream")
	if r.Header.Get("Accept") == "" {
		// curl sends */*, but a client that sends nothing means the same.
		r.Header.Set("Accept", "application/json, text/event-stream")
	}
	var body []byte
	if r.Method == http.MethodPost {
		var err error
		body, err = io.ReadAll(io.LimitReader(r.Body, maxBody+1))
		r.Body.Close()
		if err != nil {
			httpjson.WriteError(w, errdefs.New(errdefs.ErrInvalidArgument, "read request: "+err.Error()))
			return
		}
		if len(body) > maxBody {
			httpjson.WriteError(w, errdefs.New(errdefs.ErrTooLarge, fmt.Sprintf("MCP request is larger than %d bytes", maxBody)))
			return
		}
	}
	rewind := func() { r.Body = io.NopCloser(bytes.NewReader(body)) }
	rewind()

	sid := r.Header.Get(sessionHeader)
	switch {
	case sid != "":
		if !strings.HasPrefix(sid, accountTag(acct.ID)+"-") {
			// Another account's session, or none of ours: 404, as for
			// any resource of another account.
			httpjson.WriteError(w, errdefs.New(errdefs.ErrNotFound, fmt.Sprintf("MCP session %s not found", sid)))
			return
		}
		jw := &jsonErrors{w: w}
		serve(s.stateful, jw)
		if jw.status != http.StatusNotFound {
			jw.finish()
			return
		}
		// The session is ours but gone from this process: the server
		// restarted (or the session ended). Serve it statelessly.
		rewind()
		s.resumed(w, r, serve)
	case r.Method == http.MethodPost && !initializes(body):
		h := s.plain
		if wantsStream {
			h = s.streaming
		}
		// Answered as JSON: a client that accepts only JSON is fine too.
		r.Header.Set("Accept", "application/json, text/event-stream")
		jw := &jsonErrors{w: w}
		serve(h, jw)
		jw.finish()
	default:
		jw := &jsonErrors{w: w}
		serve(s.stateful, jw)
		jw.finish()
	}
}

// resumed serves a request of a session this process does not hold: a
// POST statelessly (as an SSE stream, which the session's client accepts);
// a GET with an SSE stream that carries nothing and stays open (clients
// give up the session when reopening their stream fails); a DELETE as done.
func (s *Server) resumed(w http.ResponseWriter, r *http.Request, serve func(http.Handler, http.ResponseWriter)) {
	switch r.Method {
	case http.MethodPost:
		jw := &jsonErrors{w: w}
		serve(s.streaming, jw)
		jw.finish()
	case http.MethodGet:
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		w.WriteHeader(http.StatusOK)
		_ = http.NewResponseController(w).Flush()
		<-r.Context().Done()
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

// initializes tells whether a JSON-RPC body (one message or a batch)
// holds an initialize request.
func initializes(body []byte) bool {
	var msgs []struct {
		Method string `json:"method"`
	}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) > 0 && trimmed[0] == '[' {
		_ = json.Unmarshal(trimmed, &msgs)
	} else {
		var one struct {
			Method string `json:"method"`
		}
		if json.Unmarshal(trimmed, &one) == nil {
			msgs = append(msgs, one)
		}
	}
	for _, m := range msgs {
		if m.Method == "initialize" {
			return true
		}
	}
	return false
}

// jsonErrors turns the SDK's plain-text error answers (http.Error) into
// the API's JSON errors, keeping the status. It holds back an error answer
// until finish, so the caller can look at the status and answer otherwise;
// everything else passes straight through.
type jsonErrors struct {
	w      http.ResponseWriter
	header http.Header
	status int // of a held-back error answer
	body   bytes.Buffer
	passed bool
}

func (j *jsonErrors) Header() http.Header {
	if j.passed {
		return j.w.Header()
	}
	if j.header == nil {
		j.header = http.Header{}
	}
	return j.header
}

func (j *jsonErrors) WriteHeader(code int) {
	if j.passed || j.status != 0 {
		return
	}
	if code >= 400 && strings.HasPrefix(j.header.Get("Content-Type"), "text/plain") {
		j.status = code
		return
	}
	j.pass(code)
}

func (j *jsonErrors) pass(code int) {
	j.passed = true
	for k, v := range j.header {
		j.w.Header()[k] = v
	}
	j.w.WriteHeader(code)
}

func (j *jsonErrors) Write(p []byte) (int, error) {
	if j.status != 0 {
		return j.body.Write(p)
	}
	if !j.passed {
		j.pass(http.StatusOK)
	}
	return j.w.Write(p)
}

// FlushError lets http.ResponseController flush SSE streams.
func (j *jsonErrors) FlushError() error {
	if j.status != 0 {
		return nil
	}
	if !j.passed {
		j.pass(http.StatusOK)
	}
	return http.NewResponseController(j.w).Flush()
}

// Unwrap gives http.ResponseController the connection's other abilities.
func (j *jsonErrors) Unwrap() http.ResponseWriter { return j.w }

// finish writes a held-back error answer as a JSON error.
func (j *jsonErrors) finish() {
	if j.status == 0 {
		return
	}
	msg := strings.TrimSpace(j.body.String())
	msg = strings.TrimPrefix(msg, "Bad Request: ")
	code, _ := errdefs.Code(classOf(j.status))
	if allow := j.header.Get("Allow"); allow != "" {
		j.w.Header().Set("Allow", allow)
	}
	httpjson.Write(j.w, j.status, api.ErrorBody{Error: api.ErrorDetail{Code: code, Message: msg}})
}

// classOf returns the error class of a status; statuses without one of
// their own (405, 406, 415) are bad requests.
func classOf(status int) error {
	cls := errdefs.FromStatus(status)
	if errors.Is(cls, errdefs.ErrInternal) && status < 500 {
		return errdefs.ErrInvalidArgument
	}
	return cls
}

// account returns the caller of a tool call.
func account(req *sdk.CallToolRequest) (store.Account, bool) {
	if req.Extra == nil || req.Extra.TokenInfo == nil {
		return store.Account{}, false
	}
	a, ok := req.Extra.TokenInfo.Extra["account"].(store.Account)
	return a, ok
}
