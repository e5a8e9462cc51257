package server

import (
	"net/http"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/account"
	"github.com/chaserhq/chaser/internal/errdefs"
	"github.com/chaserhq/chaser/internal/store"
)

func (s *Server) createAccount(w http.ResponseWriter, r *http.Request, acct store.Account) {
	var req api.CreateAccountRequest
	if !decode(w, r, &req) {
		return
	}
	a, err := s.accounts.CreateBy(r.Context(), acct, req.Name, req.Tier)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, a)
}

func (s *Server) listAccounts(w http.ResponseWriter, r *http.Request, acct store.Account) {
	list, err := s.accounts.ListBy(r.Context(), acct)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, api.AccountList{Accounts: list})
}

// deleteAccount deletes an account (admin only); ?force=true ends its live
// sessions first (otherwise they are a 409).
func (s *Server) deleteAccount(w http.ResponseWriter, r *http.Request, acct store.Account) {
	target, err := s.accounts.DeletableBy(r.Context(), acct, r.PathValue("id"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	force := false
	switch r.URL.Query().Get("force") {
	case "", "false", "0":
	case "true", "1":
		force = true
	default:
		writeError(w, r, errdefs.New(errdefs.ErrInvalidArgument, "force must be true or false"))
		return
	}
	if err := s.sandboxes.DeleteAccount(r.Context(), target, force); err != nil {
		writeError(w, r, err)
		return
	}
	s.accounts.ForgetAccount(target.ID) // its keys fail at once, not after the cache's TTL
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) whoami(w http.ResponseWriter, r *http.Request, acct store.Account) {
	writeJSON(w, http.StatusOK, account.ToAPI(acct))
}
