package server

import (
	"io"
	"net/http"
	"time"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/store"
)

// syncRoutes adds the endpoints `chaser dev` mirrors a tree with
// (docs/dev.md). ?path= is the sandbox directory every entry is relative to.
func (s *Server) syncRoutes() {
	s.handle("GET /v1/sessions/{id}/files/manifest", s.manifest)
	s.handle("POST /v1/sessions/{id}/files/hashes", s.hashes)
	s.handle("POST /v1/sessions/{id}/files/archive", s.archive)
	s.handle("POST /v1/sessions/{id}/files/prune", s.prune)
}

// manifest copies the agent's streamed manifest through, unbuffered.
func (s *Server) manifest(w http.ResponseWriter, r *http.Request, acct store.Account) {
	hash := r.URL.Query().Get("hash") != "0" && r.URL.Query().Get("hash") != "false"
	body, err := s.sandboxes.Manifest(r.Context(), acct, r.PathValue("id"), r.URL.Query().Get("path"), hash)
	if err != nil {
		writeError(w, r, err)
		return
	}
	defer body.Close()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	if _, err := io.CopyBuffer(w, body, make([]byte, 64<<10)); err != nil {
		s.log.Debug("manifest cut short", "session_id", r.PathValue("id"), "err", err)
	}
}

func (s *Server) hashes(w http.ResponseWriter, r *http.Request, acct store.Account) {
	var req api.HashesRequest
	if !decode(w, r, &req) {
		return
	}
	h, err := s.sandboxes.HashFiles(r.Context(), acct, r.PathValue("id"), r.URL.Query().Get("path"), req.Paths)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, h)
}

// archive streams a tar body (application/x-tar) to the agent. Like an
// upload, a body that stalls for uploadIdle is abandoned.
func (s *Server) archive(w http.ResponseWriter, r *http.Request, acct store.Account) {
	rc := http.NewResponseController(w)
	defer func() { _ = rc.SetReadDeadline(time.Time{}) }()
	res, err := s.sandboxes.Extract(r.Context(), acct, r.PathValue("id"), r.URL.Query().Get("path"), idleReader{r: r.Body, rc: rc})
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (s *Server) prune(w http.ResponseWriter, r *http.Request, acct store.Account) {
	var req api.PruneRequest
	if !decode(w, r, &req) {
		return
	}
	res, err := s.sandboxes.Prune(r.Context(), acct, r.PathValue("id"), r.URL.Query().Get("path"), req.Paths)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}
