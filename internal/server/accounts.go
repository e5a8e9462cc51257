package server

import (
	"net/http"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/account"
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

func (s *Server) whoami(w http.ResponseWriter, r *http.Request, acct store.Account) {
	writeJSON(w, http.StatusOK, account.ToAPI(acct))
}
