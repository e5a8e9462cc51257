// Package server is the HTTP front end of Chaser: routing, authentication,
// and one file per resource translating between the wire contract (api)
// and the domain services. Business rules live in the services; this
// package maps errdefs classes to status codes (errors.go) and nothing more.
package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/chaserhq/chaser/internal/account"
	"github.com/chaserhq/chaser/internal/e2b"
	"github.com/chaserhq/chaser/internal/errdefs"
	"github.com/chaserhq/chaser/internal/mcp"
	"github.com/chaserhq/chaser/internal/metrics"
	"github.com/chaserhq/chaser/internal/sandbox"
	"github.com/chaserhq/chaser/internal/store"
)

// Server serves the HTTP API.
type Server struct {
	accounts  *account.Service
	sandboxes *sandbox.Service
	metrics   *metrics.Metrics
	mcp       *mcp.Server
	e2b       *e2b.Handler
	log       *slog.Logger
	mux       *http.ServeMux
	fwd       *forwarder
	cors      cors    // WithCORS; cors.go
	tickets   tickets // tickets.go
	// bodyTimeout bounds the reading of a JSON request body.
	bodyTimeout time.Duration
}

// New returns the API server.
func New(accounts *account.Service, sandboxes *sandbox.Service, m *metrics.Metrics, log *slog.Logger) *Server {
	s := &Server{accounts: accounts, sandboxes: sandboxes, metrics: m, log: log.With("component", "server"), mux: http.NewServeMux(),
		bodyTimeout: time.Minute}
	s.mcp = mcp.New(sandboxes, log)
	s.routes()
	s.e2b = e2b.New(sandboxes, accounts, log, func() []byte { return s.fwd.secret }, func() string { return s.fwd.domain })
	return s
}

func (s *Server) routes() {
	s.mux.HandleFunc("GET /healthz", s.healthz)
	s.handle("GET /metrics", s.metricsForAdmin)

	s.handle("POST /v1/accounts", s.createAccount)
	s.handle("GET /v1/accounts", s.listAccounts)
	s.handle("DELETE /v1/accounts/{id}", s.deleteAccount)
	s.handle("GET /v1/account", s.whoami)

	s.handle("POST /v1/sessions", s.createSession)
	s.handle("GET /v1/sessions", s.listSessions)
	s.handle("GET /v1/sessions/{id}", s.getSession)
	s.handle("DELETE /v1/sessions/{id}", s.deleteSession)

	s.handle("POST /v1/workspaces", s.createWorkspace)
	s.handle("GET /v1/workspaces", s.listWorkspaces)
	s.handle("GET /v1/workspaces/{name}", s.getWorkspace)
	s.handle("DELETE /v1/workspaces/{name}", s.deleteWorkspace)
	s.handle("PATCH /v1/workspaces/{name}", s.updateWorkspace)
	s.handle("PUT /v1/defaults/{type}", s.setDefault)
	s.handle("GET /v1/defaults/{type}", s.getDefault)

	s.handle("POST /v1/exec", s.execTargetless)
	for _, method := range []string{"POST", "GET", "DELETE"} {
		s.handle(method+" /v1/mcp", s.mcp.ServeHTTP)
	}
	s.handle("POST /v1/sessions/{id}/exec", s.execInSession)
	s.handle("GET /v1/sessions/{id}/commands", s.listCommands)
	s.handle("GET /v1/sessions/{id}/commands/{cid}", s.getCommand)
	s.handle("GET /v1/sessions/{id}/commands/{cid}/output", s.commandOutput)
	s.handle("POST /v1/sessions/{id}/commands/{cid}/stdin", s.commandStdin)
	s.handle("POST /v1/sessions/{id}/commands/{cid}/signal", s.commandSignal)
	s.fileRoutes()
	s.syncRoutes()

	s.imageRoutes()
	s.fwd = newForwarder(s)
	s.mux.HandleFunc("/s/{id}/forward/{port}", s.fwd.pathStyle)
	s.mux.HandleFunc("/s/{id}/forward/{port}/{rest...}", s.fwd.pathStyle)
	s.mux.HandleFunc("/forward/{port}", s.fwd.hostStyle)
	s.mux.HandleFunc("/forward/{port}/{rest...}", s.fwd.hostStyle)
	s.handle("GET /v1/sessions/{id}/tunnel/{port}", s.tunnel)
	s.handle("GET /v1/sessions/{id}/ports", s.listPorts)
	s.handle("GET /v1/sessions/{id}/ports/{port}", s.getPort)
	s.handle("PUT /v1/sessions/{id}/ports/{port}", s.setPort)
	s.mux.HandleFunc("GET /v1/sessions/{id}/pty", s.ptyAuth)
	s.handle("POST /v1/sessions/{id}/self-test", s.selfTest)
	s.handle("POST /v1/sessions/{id}/tickets", s.createTicket)

	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, errdefs.New(errdefs.ErrNotFound, fmt.Sprintf("no route for %s %s", r.Method, r.URL.Path)))
	})
}

// authedHandler is a handler of an authenticated route.
type authedHandler func(w http.ResponseWriter, r *http.Request, acct store.Account)

// handle registers an authenticated route.
func (s *Server) handle(pattern string, h authedHandler) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		acct, err := s.authenticate(r)
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="chaser"`)
			writeError(w, r, err)
			return
		}
		logAttrs(r).account = acct.ID
		h(w, r, acct)
	})
}

// authenticate reads the Bearer key of a request.
func (s *Server) authenticate(r *http.Request) (store.Account, error) {
	h := r.Header.Get("Authorization")
	scheme, key, ok := strings.Cut(h, " ")
	if h == "" {
		return store.Account{}, errdefs.New(errdefs.ErrUnauthenticated, "missing API key: send Authorization: Bearer <key>")
	}
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return store.Account{}, errdefs.New(errdefs.ErrUnauthenticated, "Authorization must be: Bearer <key>")
	}
	return s.accounts.Authenticate(r.Context(), strings.TrimSpace(key))
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "runtime": s.sandboxes.RuntimeName()})
}

// WithBodyTimeout sets how long a client may take to send a JSON request
// body (default one minute).
func (s *Server) WithBodyTimeout(d time.Duration) *Server {
	if d > 0 {
		s.bodyTimeout = d
	}
	return s
}

type ctxKey struct{}

// reqAttrs are filled in by handlers for the access log.
type reqAttrs struct {
	account string
	session string
	err     string // the message of an error answer
	// bodyTimeout is the server's, for decode.
	bodyTimeout time.Duration
}

func logAttrs(r *http.Request) *reqAttrs {
	if a, ok := r.Context().Value(ctxKey{}).(*reqAttrs); ok {
		return a
	}
	return &reqAttrs{}
}

// statusWriter records the status for the access log. It passes Flush and
// Hijack through (streaming answers and WebSockets).
type statusWriter struct {
	http.ResponseWriter
	status int
	ws     *wsConn // set once the connection was hijacked (wslog.go)
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// ServeHTTP adds a request id, an access log line and panic recovery.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rid := r.Header.Get("X-Request-Id")
	if rid == "" || len(rid) > 64 {
		b := make([]byte, 8)
		_, _ = rand.Read(b)
		rid = hex.EncodeToString(b)
	}
	w.Header().Set("X-Request-Id", rid)
	attrs := &reqAttrs{bodyTimeout: s.bodyTimeout}
	r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, attrs))
	sw := &statusWriter{ResponseWriter: w}
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			s.log.Error("panic", "request_id", rid, "panic", p, "stack", string(debug.Stack()))
			if sw.status == 0 {
				writeError(sw, r, fmt.Errorf("internal error (request %s): %w", rid, errdefs.ErrInternal))
			}
		}
		sw.settle()
		route := r.Pattern
		if route == "" {
			route = "unmatched"
		}
		s.metrics.Requests.WithLabelValues(route, strconv.Itoa(sw.status)).Inc()
		s.metrics.RequestDuration.WithLabelValues(route).Observe(time.Since(start).Seconds())
		logAccess(s.log, r, sw, attrs, rid, start)
	}()
	r = withErrorLog(r, s.log, rid)
	if s.serveCORS(sw, r) {
		return // a preflight, answered
	}
	// The E2B-compatible API shares the port (internal/e2b): envd calls
	// by their sandbox header, host-style PORT-ID.DOMAIN ports, then its
	// control-plane paths, before Chaser's own routes.
	switch {
	case e2b.IsEnvd(r):
		s.e2b.ServeEnvd(sw, r)
	case s.fwd.e2bHostStyle(sw, r):
	case e2b.IsControl(r):
		s.e2b.ServeControl(sw, r)
	default:
		s.mux.ServeHTTP(sw, r)
	}
}
