package agent

import (
	"context"
	"net/http"
	"strings"

	"github.com/chaserhq/chaser/internal/errdefs"
	"github.com/chaserhq/chaser/internal/httpjson"
)

// InitRequest is the body of POST /v1/init: the identity the server gives
// a sandbox made ahead of its session (the warm pool) when a session
// claims it. A sandbox made for its session has its identity in its
// environment from the start and is never initialised.
type InitRequest struct {
	// SessionID becomes CHASER_SESSION_ID of every command.
	SessionID string `json:"session_id"`
	// Env is laid over the sandbox's environment (CHASER_WORKSPACE_ID
	// ...); keys CHASER_AGENT_* are refused.
	Env map[string]string `json:"env,omitempty"`
}

// EnvSessionID is the variable that names a command's session.
const EnvSessionID = "CHASER_SESSION_ID"

func (a *Agent) initRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/init", a.init)
}

// init binds the sandbox to its session, once: a second init is
// errdefs.ErrFailedPrecondition (409), so a pooled sandbox can never be
// handed to two sessions, even by two racing servers.
func (a *Agent) init(w http.ResponseWriter, r *http.Request) {
	var req InitRequest
	if err := httpjson.Decode(w, r, &req); err != nil {
		httpjson.WriteError(w, err)
		return
	}
	if req.SessionID == "" {
		httpjson.WriteError(w, errdefs.New(errdefs.ErrInvalidArgument, "init: session_id is required"))
		return
	}
	for k := range req.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.HasPrefix(k, "CHASER_AGENT_") {
			httpjson.WriteError(w, errdefs.New(errdefs.ErrInvalidArgument, "init: bad environment variable name "+k))
			return
		}
	}
	env := map[string]string{EnvSessionID: req.SessionID}
	for k, v := range req.Env {
		env[k] = v
	}
	a.envMu.Lock()
	defer a.envMu.Unlock()
	if a.inited {
		httpjson.WriteError(w, errdefs.New(errdefs.ErrFailedPrecondition, "init: this sandbox already belongs to a session"))
		return
	}
	a.env = mergeEnv(a.env, env)
	a.inited = true
	a.log.Info("sandbox initialised", "session_id", req.SessionID)
	w.WriteHeader(http.StatusNoContent)
}

// environ is the sandbox's environment: the agent's own, with what init
// laid over it.
func (a *Agent) environ() []string {
	a.envMu.RLock()
	defer a.envMu.RUnlock()
	return a.env
}

// Init binds a pooled sandbox to its session (see InitRequest). It fails
// with errdefs.ErrFailedPrecondition when the sandbox already has one.
func (c *Client) Init(ctx context.Context, req InitRequest) error {
	return c.call(ctx, http.MethodPost, "/v1/init", req, nil)
}
