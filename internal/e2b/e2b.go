// Package e2b is the E2B-compatible front end: the control plane of E2B's
// API (/sandboxes…, /v2/sandboxes…) and the envd protocol the E2B SDKs
// speak to a sandbox (Connect RPCs process.Process and
// filesystem.Filesystem, /files, /health), served on Chaser's own port over
// the same sandbox.Service as the HTTP API and MCP. It adds no second
// implementation of exec, files or lifecycle: an E2B sandbox is an ordinary
// Chaser session, with E2B's template, metadata and envVars stored beside it.
package e2b

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"

	"github.com/chaserhq/chaser/internal/account"
	"github.com/chaserhq/chaser/internal/e2b/spec/filesystem/filesystemconnect"
	"github.com/chaserhq/chaser/internal/e2b/spec/process/processconnect"
	"github.com/chaserhq/chaser/internal/errdefs"
	"github.com/chaserhq/chaser/internal/httpjson"
	"github.com/chaserhq/chaser/internal/sandbox"
	"github.com/chaserhq/chaser/internal/store"
)

// EnvdVersion is the envd version Chaser reports: the SDKs gate features
// on it, and 0.6.13 takes their current paths (no legacy fallbacks).
const EnvdVersion = "0.6.13"

// EnvdPort is the port the SDKs address envd at (E2b-Sandbox-Port).
const EnvdPort = 49983

// Header names of the protocol.
const (
	HeaderSandboxID    = "E2b-Sandbox-Id"
	HeaderAccessToken  = "X-Access-Token"
	HeaderTrafficToken = "E2b-Traffic-Access-Token"
)

// Handler serves the E2B API.
type Handler struct {
	sandboxes *sandbox.Service
	accounts  *account.Service
	log       *slog.Logger
	// key derives the per-sandbox secrets (envd and traffic tokens); it
	// is read on every use, so the server may set it after New.
	key func() []byte
	// domain is chaser serve --domain; host-style ports are off when empty.
	domain  func() string
	control *http.ServeMux
	envd    *http.ServeMux
	ptys    ptyTable
	// recMu orders changes of the stored records (updateRecord).
	recMu sync.Mutex
	// reattach orders the reattaching of terminals after a restart.
	reattach sync.Mutex
	// watchers are the watches of CreateWatcher.
	watchers watcherTable
}

// New returns the E2B front end over sandboxes.
func New(sandboxes *sandbox.Service, accounts *account.Service, log *slog.Logger, key func() []byte, domain func() string) *Handler {
	h := &Handler{sandboxes: sandboxes, accounts: accounts, log: log.With("component", "e2b"), key: key, domain: domain,
		control: http.NewServeMux(), envd: http.NewServeMux()}
	h.controlRoutes()
	opts := connect.WithInterceptors()
	h.envd.Handle(processconnect.NewProcessHandler(&processService{h: h}, opts))
	h.envd.Handle(filesystemconnect.NewFilesystemHandler(&filesystemService{h: h}, opts))
	h.envd.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	h.envd.HandleFunc("GET /files", h.getFile)
	h.envd.HandleFunc("POST /files", h.postFile)
	h.envd.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeEnvdError(w, errdefs.New(errdefs.ErrNotFound, "no envd route for "+r.Method+" "+r.URL.Path))
	})
	return h
}

// IsControl tells whether r is a control-plane call of the E2B API.
func IsControl(r *http.Request) bool {
	p := r.URL.Path
	for _, prefix := range []string{"/sandboxes", "/v2/sandboxes"} {
		if p == prefix || strings.HasPrefix(p, prefix+"/") {
			return true
		}
	}
	return false
}

// IsEnvd tells whether r is addressed to a sandbox's envd.
func IsEnvd(r *http.Request) bool { return r.Header.Get(HeaderSandboxID) != "" }

// ServeControl serves the control plane.
func (h *Handler) ServeControl(w http.ResponseWriter, r *http.Request) { h.control.ServeHTTP(w, r) }

// ServeEnvd serves envd calls; each authenticates with the sandbox's
// access token (see target).
func (h *Handler) ServeEnvd(w http.ResponseWriter, r *http.Request) {
	// Connect's server streams need an http.Flusher; the server's own
	// writers pass Flush through Unwrap only.
	h.envd.ServeHTTP(flusher{w}, r)
}

type flusher struct{ http.ResponseWriter }

func (f flusher) Flush()                      { _ = http.NewResponseController(f.ResponseWriter).Flush() }
func (f flusher) Unwrap() http.ResponseWriter { return f.ResponseWriter }

// secret derives a per-sandbox secret for purpose from the server's key:
// nothing to store, different for every sandbox, and never an API key.
func (h *Handler) secret(purpose, id string) string {
	m := hmac.New(sha256.New, h.key())
	m.Write([]byte("e2b|" + purpose + "|" + id))
	return hex.EncodeToString(m.Sum(nil))
}

func (h *Handler) envdToken(id string) string    { return h.secret("envd", id) }
func (h *Handler) trafficToken(id string) string { return h.secret("traffic", id) }

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// record is what the front end stores with a session: E2B's data of a
// sandbox made through it (TemplateID set), and for any session the tags
// and terminals of its envd processes, so that they outlive a restart of
// the server (the agent in the sandbox keeps running them).
type record struct {
	TemplateID string            `json:"templateID,omitempty"`
	Metadata   map[string]string `json:"metadata,omitempty"`
	EnvVars    map[string]string `json:"envVars,omitempty"`
	// Private ports need the traffic token (network.allowPublicTraffic
	// false at create); otherwise the sandbox's ports are public, as E2B's.
	Private bool `json:"private,omitempty"`
	// Tags are process.Start's tags: tag → the command's id.
	Tags map[string]string `json:"tags,omitempty"`
	// PTYs are the terminals process.Start opened: pid → the agent's
	// terminal, which a server reattaches after a restart.
	PTYs map[string]ptyRecord `json:"ptys,omitempty"`
}

type ptyRecord struct {
	ID  string `json:"id"`  // the agent's pty_id
	Cmd string `json:"cmd"` // what ProcessInfo reports
}

// recordOf reads the front end's data of session x; made is false for
// sessions not made through it (Chaser's own, whose templateID is their
// image).
func recordOf(x store.Session) (rec record, made bool) {
	if x.E2B != "" {
		_ = json.Unmarshal([]byte(x.E2B), &rec)
	}
	if rec.TemplateID == "" {
		rec.TemplateID = x.Image
		return rec, false
	}
	return rec, true
}

// Bounds of what a record keeps per sandbox.
const (
	maxTags = 1024
	maxPTYs = 256
)

// updateRecord changes the stored record of t's session with f, read
// afresh under the handler's lock so concurrent changes are not lost, and
// keeps t.rec in step.
func (h *Handler) updateRecord(ctx context.Context, t *target, f func(*record) error) error {
	h.recMu.Lock()
	defer h.recMu.Unlock()
	x, err := h.sandboxes.Record(ctx, t.acct, t.id)
	if err != nil {
		return err
	}
	var rec record
	if x.E2B != "" {
		if err := json.Unmarshal([]byte(x.E2B), &rec); err != nil {
			return fmt.Errorf("session %s's E2B record: %v: %w", t.id, err, errdefs.ErrInternal)
		}
	}
	if err := f(&rec); err != nil {
		return err
	}
	data, _ := json.Marshal(rec)
	if err := h.sandboxes.SetE2B(ctx, t.acct, t.id, string(data)); err != nil {
		return err
	}
	made := rec.TemplateID != ""
	if !made {
		rec.TemplateID = x.Image
	}
	t.rec = rec
	return nil
}

// target is the sandbox an envd call addresses, authenticated.
type target struct {
	acct store.Account
	id   string
	rec  record
	user string // from Basic auth "user:", or ""
}

// target authenticates an envd call by its sandbox's access token. A
// call without one is unauthenticated; with a token that is not the
// sandbox's, it is not found, as an unknown sandbox and another account's
// are on the control plane (so ids of others are not disclosed); a sandbox
// that ended is unavailable, as E2B reports a sandbox that is gone.
func (h *Handler) target(ctx context.Context, hdr http.Header) (target, error) {
	id := hdr.Get(HeaderSandboxID)
	tok := hdr.Get(HeaderAccessToken)
	if tok == "" {
		return target{}, errdefs.New(errdefs.ErrUnauthenticated, "missing X-Access-Token for sandbox "+id+": send the envdAccessToken of the create or connect answer")
	}
	if !equal(tok, h.envdToken(id)) {
		return target{}, errdefs.New(errdefs.ErrNotFound, "sandbox "+id+" not found (or X-Access-Token is not its envdAccessToken)")
	}
	acct, err := h.sandboxes.Owner(ctx, id)
	if err != nil {
		return target{}, err
	}
	x, err := h.sandboxes.Record(ctx, acct, id)
	if err != nil {
		return target{}, err
	}
	if x.EndedAt != nil || x.Reason != "" {
		return target{}, errdefs.New(errdefs.ErrUnavailable, "sandbox "+id+" is not running: it was killed or reached its timeout")
	}
	rec, _ := recordOf(x)
	t := target{acct: acct, id: id, rec: rec}
	if u, _, ok := basicUser(hdr); ok {
		t.user = u
	}
	return t, nil
}

// basicUser reads the user of "Authorization: Basic base64(user:)".
func basicUser(hdr http.Header) (string, string, bool) {
	r := http.Request{Header: hdr}
	return r.BasicAuth()
}

// env merges the sandbox's envVars and a call's own (which win).
func (t target) env(own map[string]string) map[string]string {
	if len(t.rec.EnvVars) == 0 {
		return own
	}
	out := make(map[string]string, len(t.rec.EnvVars)+len(own))
	for k, v := range t.rec.EnvVars {
		out[k] = v
	}
	for k, v := range own {
		out[k] = v
	}
	return out
}

// connectError turns an error class into a Connect code; internal
// errors are logged, their cause kept from the client.
func (h *Handler) connectError(err error) error {
	if err == nil {
		return nil
	}
	var ce *connect.Error
	if errors.As(err, &ce) {
		return err
	}
	code := connect.CodeInternal
	switch {
	case errors.Is(err, errdefs.ErrInvalidArgument), errors.Is(err, errdefs.ErrUnprocessable):
		code = connect.CodeInvalidArgument
	case errors.Is(err, errdefs.ErrUnauthenticated):
		code = connect.CodeUnauthenticated
	case errors.Is(err, errdefs.ErrPermissionDenied):
		code = connect.CodePermissionDenied
	case errors.Is(err, errdefs.ErrNotFound):
		code = connect.CodeNotFound
	case errors.Is(err, errdefs.ErrAlreadyExists):
		code = connect.CodeAlreadyExists
	case errors.Is(err, errdefs.ErrFailedPrecondition):
		code = connect.CodeFailedPrecondition
	case errors.Is(err, errdefs.ErrTooLarge), errors.Is(err, errdefs.ErrResourceExhausted):
		code = connect.CodeResourceExhausted
	case errors.Is(err, errdefs.ErrUnavailable):
		code = connect.CodeUnavailable
	case errors.Is(err, errdefs.ErrNotImplemented):
		code = connect.CodeUnimplemented
	case errors.Is(err, context.DeadlineExceeded):
		code = connect.CodeDeadlineExceeded
	case errors.Is(err, context.Canceled):
		code = connect.CodeCanceled
	}
	if code == connect.CodeInternal {
		h.log.Error("e2b envd call failed", "err", err)
		return connect.NewError(code, errors.New("internal error; the server log has the cause"))
	}
	return connect.NewError(code, errors.New(httpjson.Message(err)))
}

// apiError is the control plane's error body: E2B's shape.
type apiError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// writeAPIError answers a control-plane error with E2B's body and the
// matching status; 429 carries Retry-After.
func (h *Handler) writeAPIError(w http.ResponseWriter, r *http.Request, err error) {
	_, status := errdefs.Code(err)
	msg := httpjson.Message(err)
	if status >= 500 {
		h.log.Error("e2b request failed", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
		if status == http.StatusInternalServerError {
			msg = "internal server error; the server log has the cause"
		}
	}
	if status == http.StatusTooManyRequests {
		// Whole seconds: the SDK retries after an integer Retry-After only.
		secs := 5
		if d := errdefs.RetryAfter(err); d > 0 {
			secs = int((d + time.Second - 1) / time.Second)
		}
		w.Header().Set("Retry-After", strconv.Itoa(secs))
	}
	httpjson.Write(w, status, apiError{Code: status, Message: msg})
}

// writeEnvdError answers an envd REST error (/files): E2B's body.
func writeEnvdError(w http.ResponseWriter, err error) {
	_, status := errdefs.Code(err)
	msg := httpjson.Message(err)
	if status == http.StatusInternalServerError {
		msg = "internal server error"
	}
	if errors.Is(err, errdefs.ErrUnavailable) {
		status = http.StatusBadGateway // E2B's answer for a sandbox that is gone
	}
	httpjson.Write(w, status, apiError{Code: status, Message: msg})
}

func itoa(n int) string { return strconv.Itoa(n) }

// PortAccess decides whether r may reach a port of sandbox id through its
// host-style address PORT-ID.DOMAIN. It reports made=false for sessions
// not made through this API (Chaser's own forwarding rule decides for
// them). A sandbox made here has public ports, as E2B's, unless its create
// set network.allowPublicTraffic false: then the e2b-traffic-access-token
// header must carry its trafficAccessToken. ErrNotFound when it does not
// run.
func (h *Handler) PortAccess(r *http.Request, id string) (made bool, err error) {
	notFound := errdefs.New(errdefs.ErrNotFound, "sandbox "+id+" not found")
	acct, err := h.sandboxes.Owner(r.Context(), id)
	if err != nil {
		return false, notFound
	}
	x, err := h.sandboxes.Record(r.Context(), acct, id)
	if err != nil || x.EndedAt != nil || x.Reason != "" || !h.sandboxes.IsRunning(id) {
		return false, notFound
	}
	rec, made := recordOf(x)
	if !made {
		return false, nil
	}
	if rec.Private && !equal(r.Header.Get(HeaderTrafficToken), h.trafficToken(id)) {
		return true, errdefs.New(errdefs.ErrPermissionDenied, "this sandbox's ports are private: send the trafficAccessToken of its create answer as e2b-traffic-access-token")
	}
	return true, nil
}

// checkUser answers invalid_argument when the call names a user the
// sandbox does not know, for the calls Chaser makes as the agent rather
// than as a user (reads, listings, stat, move, remove, watches), as envd
// refuses an unknown user on every call. Exec, terminals, uploads and
// mkdir pass the user on and the agent refuses it there. root and numeric
// ids are always known; a name is looked up in the sandbox's /etc/passwd.
func (h *Handler) checkUser(ctx context.Context, t target) error {
	name, _, _ := strings.Cut(t.user, ":")
	if name == "" || name == "root" || strings.Trim(name, "0123456789") == "" {
		return nil
	}
	d, err := h.sandboxes.Download(ctx, t.acct, t.id, "/etc/passwd")
	if err != nil {
		if errors.Is(err, errdefs.ErrNotFound) {
			return errdefs.New(errdefs.ErrInvalidArgument, "user "+name+" is not known in this sandbox (it has no /etc/passwd)")
		}
		return err
	}
	defer d.Body.Close()
	b, err := io.ReadAll(io.LimitReader(d.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("read the sandbox's /etc/passwd: %v: %w", err, errdefs.ErrUnavailable)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if n, _, ok := strings.Cut(line, ":"); ok && n == name {
			return nil
		}
	}
	return errdefs.New(errdefs.ErrInvalidArgument, "user "+name+" is not known in this sandbox")
}
