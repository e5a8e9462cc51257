// Package mcp is the MCP front end of Chaser: POST /v1/mcp speaks the Model
// Context Protocol over streamable HTTP with the official Go SDK and offers
// the `terminal` tool. Like the HTTP handlers it is a thin adapter: targets
// are resolved by sandbox.Service.Create, commands and files go through the
// same service.
//
// Two transports share one tool set. A standard client (initialize,
// Mcp-Session-Id, SSE) gets a stateful session; a bare JSON-RPC request with
// no session — the seed page's curl of tools/call — is served statelessly
// and answered with plain JSON.
package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/chaserhq/chaser/internal/sandbox"
	"github.com/chaserhq/chaser/internal/store"
)

// maxBody bounds one MCP request: a write_file may carry a whole file.
const maxBody = 20 << 20

// Server serves /v1/mcp.
type Server struct {
	svc       *sandbox.Service
	log       *slog.Logger
	stateful  http.Handler
	stateless http.Handler

	mu sync.Mutex
	// targetless remembers, per account, the throwaway sandbox that its
	// targetless calls run in, so they share it.
	targetless map[string]string
}

// New returns the MCP front end over svc.
func New(svc *sandbox.Service, log *slog.Logger) *Server {
	s := &Server{svc: svc, log: log.With("component", "mcp"), targetless: map[string]string{}}
	srv := sdk.NewServer(&sdk.Implementation{Name: "chaser", Version: "1"}, &sdk.ServerOptions{
		Instructions: "Chaser gives you an isolated Linux sandbox. Use the terminal tool to run shell commands " +
			"and to read, write, edit and list files. Pass the session_id from a result to later calls to keep " +
			"working in the same sandbox.",
	})
	sdk.AddTool(srv, terminalTool(), s.terminal)
	get := func(*http.Request) *sdk.Server { return srv }
	// The API key is the protection against DNS rebinding: a browser
	// cannot add it to a rebound request.
	s.stateful = sdk.NewStreamableHTTPHandler(get, &sdk.StreamableHTTPOptions{
		DisableLocalhostProtection: true, MaxRequestBodyBytes: maxBody, Logger: s.log,
	})
	s.stateless = sdk.NewStreamableHTTPHandler(get, &sdk.StreamableHTTPOptions{
		Stateless: true, JSONResponse: true, DisableLocalhostProtection: true, MaxRequestBodyBytes: maxBody, Logger: s.log,
	})
	return s
}

type accountKey struct{}

// ServeHTTP serves an authenticated request of acct.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request, acct store.Account) {
	r = r.WithContext(context.WithValue(r.Context(), accountKey{}, acct))
	// The SDK binds stateful sessions to the user that opened them, so a
	// session id cannot be used with another account's key.
	verify := func(ctx context.Context, _ string, _ *http.Request) (*auth.TokenInfo, error) {
		return &auth.TokenInfo{UserID: acct.ID, Expiration: time.Now().Add(time.Hour), Extra: map[string]any{"account": acct}}, nil
	}
	h := s.stateless
	if s.isStateful(r) {
		h = s.stateful
	}
	if r.Header.Get("Accept") == "" {
		// curl sends */*, but a client that sends nothing means the same.
		r.Header.Set("Accept", "application/json, text/event-stream")
	}
	auth.RequireBearerToken(verify, nil)(h).ServeHTTP(w, r)
}

// isStateful tells whether a request belongs to a standard MCP session: it
// carries a session id, is not a POST (SSE stream, session end), or
// initializes one.
func (s *Server) isStateful(r *http.Request) bool {
	if r.Method != http.MethodPost || r.Header.Get("Mcp-Session-Id") != "" {
		return true
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	r.Body.Close()
	r.Body = io.NopCloser(bytes.NewReader(body))
	if err != nil {
		return false
	}
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

// account returns the caller of a tool call.
func account(req *sdk.CallToolRequest) (store.Account, bool) {
	if req.Extra == nil || req.Extra.TokenInfo == nil {
		return store.Account{}, false
	}
	a, ok := req.Extra.TokenInfo.Extra["account"].(store.Account)
	return a, ok
}
