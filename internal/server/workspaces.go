package server

import (
	"net/http"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/errdefs"
	"github.com/chaserhq/chaser/internal/store"
)

func (s *Server) createWorkspace(w http.ResponseWriter, r *http.Request, acct store.Account) {
	var req api.CreateWorkspaceRequest
	if !decode(w, r, &req) {
		return
	}
	ws, err := s.sandboxes.CreateWorkspace(r.Context(), acct, req)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, ws)
}

func (s *Server) listWorkspaces(w http.ResponseWriter, r *http.Request, acct store.Account) {
	all, q, err := listQuery(r, "workspaces")
	if err != nil {
		writeError(w, r, err)
		return
	}
	list, next, err := s.sandboxes.ListWorkspaces(r.Context(), acct, all, q)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, api.WorkspaceList{Workspaces: list, NextToken: next})
}

func (s *Server) getWorkspace(w http.ResponseWriter, r *http.Request, acct store.Account) {
	ws, err := s.sandboxes.GetWorkspace(r.Context(), acct, r.PathValue("name"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, ws)
}

// updateWorkspace grows a workspace's disk ({"disk_mb": N}).
func (s *Server) updateWorkspace(w http.ResponseWriter, r *http.Request, acct store.Account) {
	var req api.UpdateWorkspaceRequest
	if !decode(w, r, &req) {
		return
	}
	ws, err := s.sandboxes.GrowWorkspace(r.Context(), acct, r.PathValue("name"), req)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, ws)
}

// deleteWorkspace deletes a workspace; ?force=true stops a session running
// on it first (otherwise that is a 409).
func (s *Server) deleteWorkspace(w http.ResponseWriter, r *http.Request, acct store.Account) {
	force := false
	switch r.URL.Query().Get("force") {
	case "", "false", "0":
	case "true", "1":
		force = true
	default:
		writeError(w, r, errdefs.New(errdefs.ErrInvalidArgument, "force must be true or false"))
		return
	}
	if err := s.sandboxes.DeleteWorkspace(r.Context(), acct, r.PathValue("name"), force); err != nil {
		writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) setDefault(w http.ResponseWriter, r *http.Request, acct store.Account) {
	var req api.DefaultWorkspace
	if !decode(w, r, &req) {
		return
	}
	typ := r.PathValue("type")
	if err := s.sandboxes.SetDefault(r.Context(), acct, typ, req.Workspace); err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, api.DefaultWorkspace{SessionType: typ, Workspace: req.Workspace})
}

func (s *Server) getDefault(w http.ResponseWriter, r *http.Request, acct store.Account) {
	ws, err := s.sandboxes.GetDefault(r.Context(), acct, r.PathValue("type"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, ws)
}
