package server

import (
	"net/http"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/store"
)

func (s *Server) createSession(w http.ResponseWriter, r *http.Request, acct store.Account) {
	var req api.CreateSessionRequest
	if !decode(w, r, &req) {
		return
	}
	sess, created, err := s.sandboxes.Create(r.Context(), acct, req)
	if err != nil {
		writeError(w, r, err)
		return
	}
	status := http.StatusCreated
	if !created {
		status = http.StatusOK // the workspace's running session
	}
	writeJSON(w, status, sess)
}

func (s *Server) listSessions(w http.ResponseWriter, r *http.Request, acct store.Account) {
	all, q, err := listQuery(r, "sessions")
	if err != nil {
		writeError(w, r, err)
		return
	}
	list, next, err := s.sandboxes.List(r.Context(), acct, all, q)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, api.SessionList{Sessions: list, NextToken: next})
}

func (s *Server) getSession(w http.ResponseWriter, r *http.Request, acct store.Account) {
	sess, err := s.sandboxes.Get(r.Context(), acct, r.PathValue("id"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, sess)
}

func (s *Server) deleteSession(w http.ResponseWriter, r *http.Request, acct store.Account) {
	if err := s.sandboxes.Delete(r.Context(), acct, r.PathValue("id")); err != nil {
		writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
