package server

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/agent"
	"github.com/chaserhq/chaser/internal/errdefs"
	"github.com/chaserhq/chaser/internal/store"
)

// ticketTTL is how long a ticket may wait for its one use: a browser asks
// for it right before it opens the URL.
const ticketTTL = 60 * time.Second

// maxTickets bounds the tickets waiting at once, across accounts, so that a
// client asking in a loop cannot grow the map without end.
const maxTickets = 10000

// tickets holds the unspent tickets in memory: they live a minute, so a
// restart losing them costs a browser one more request.
type tickets struct {
	mu sync.Mutex
	m  map[string]ticket
}

type ticket struct {
	acct    store.Account // as authenticated when the ticket was issued
	session string
	purpose string
	port    int
	exp     time.Time
}

// issue stores a new ticket and returns its secret.
func (t *tickets) issue(acct store.Account, session, purpose string, port int, now time.Time) (string, time.Time, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = map[string]ticket{}
	}
	if len(t.m) >= maxTickets/2 {
		for k, v := range t.m {
			if !now.Before(v.exp) {
				delete(t.m, k)
			}
		}
	}
	if len(t.m) >= maxTickets {
		return "", time.Time{}, errdefs.New(errdefs.ErrResourceExhausted, "too many unused tickets: use or let expire the ones issued")
	}
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	secret := "tk_" + base64.RawURLEncoding.EncodeToString(b)
	exp := now.Add(ticketTTL)
	t.m[secret] = ticket{acct: acct, session: session, purpose: purpose, port: port, exp: exp}
	return secret, exp, nil
}

// redeem spends a ticket for session, purpose and port (0 unless a
// forward) and returns the account it was issued to. A ticket is gone after
// one attempt, whether it matched or not; an unknown, spent, expired or
// mismatched one is errdefs.ErrUnauthenticated.
func (t *tickets) redeem(secret, session, purpose string, port int, now time.Time) (store.Account, error) {
	t.mu.Lock()
	v, ok := t.m[secret]
	delete(t.m, secret)
	t.mu.Unlock()
	if !ok || !now.Before(v.exp) || v.session != session || v.purpose != purpose || v.port != port {
		return store.Account{}, errdefs.New(errdefs.ErrUnauthenticated,
			"ticket unknown, already used, expired or issued for something else: ask for a new one with POST /v1/sessions/"+session+"/tickets")
	}
	return v.acct, nil
}

// createTicket serves POST /v1/sessions/{id}/tickets.
func (s *Server) createTicket(w http.ResponseWriter, r *http.Request, acct store.Account) {
	var req api.CreateTicketRequest
	if !decode(w, r, &req) {
		return
	}
	id := r.PathValue("id")
	switch req.Purpose {
	case api.TicketPTY:
		if req.Port != 0 {
			writeError(w, r, errdefs.New(errdefs.ErrInvalidArgument, "port is only for purpose \"forward\""))
			return
		}
	case api.TicketForward:
		if _, err := agent.ParsePort(fmt.Sprint(req.Port)); err != nil {
			writeError(w, r, err)
			return
		}
	default:
		writeError(w, r, errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("purpose %q: want \"pty\" or \"forward\"", req.Purpose)))
		return
	}
	// Only for a running session of the caller's: another account's is 404.
	if _, _, err := s.sandboxes.Agent(r.Context(), acct, id); err != nil {
		writeError(w, r, err)
		return
	}
	secret, exp, err := s.tickets.issue(acct, id, req.Purpose, req.Port, time.Now())
	if err != nil {
		writeError(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, api.Ticket{Ticket: secret, SessionID: id, Purpose: req.Purpose, Port: req.Port, ExpiresAt: exp.UTC()})
}
