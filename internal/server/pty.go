package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httputil"
	"strconv"
	"strings"
	"time"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/agent"
	"github.com/chaserhq/chaser/internal/errdefs"
	"github.com/chaserhq/chaser/internal/store"
)

// ptyAuth serves GET /v1/sessions/{id}/pty. Browsers cannot set headers on
// a WebSocket, so besides the Bearer header the key may come as ?token=,
// or a single-use ticket as ?ticket=; either is removed before anything is
// forwarded or logged.
func (s *Server) ptyAuth(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if t := q.Get("ticket"); t != "" {
		// A browser's single-use ticket (POST …/tickets) instead of the key.
		q.Del("ticket")
		r.URL.RawQuery = q.Encode()
		acct, err := s.tickets.redeem(t, r.PathValue("id"), api.TicketPTY, 0, time.Now())
		if err != nil {
			writeError(w, r, err)
			return
		}
		logAttrs(r).account = acct.ID
		s.pty(w, r, acct)
		return
	}
	if tok := q.Get("token"); tok != "" {
		if r.Header.Get("Authorization") == "" {
			r.Header.Set("Authorization", "Bearer "+tok)
		}
		q.Del("token")
		r.URL.RawQuery = q.Encode()
	}
	acct, err := s.authenticate(r)
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="chaser"`)
		writeError(w, r, err)
		return
	}
	logAttrs(r).account = acct.ID
	s.pty(w, r, acct)
}

// pty checks the request, then proxies the WebSocket to the sandbox's
// agent, which owns the terminal. Errors found here or by the agent before
// the upgrade are plain JSON errors (4xx); after it, JSON error frames.
func (s *Server) pty(w http.ResponseWriter, r *http.Request, acct store.Account) {
	opts, err := agent.ParsePTYQuery(r.URL.Query())
	if err != nil {
		writeError(w, r, err)
		return
	}
	c, _, err := s.sandboxes.Agent(r.Context(), acct, r.PathValue("id"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		writeError(w, r, errdefs.New(errdefs.ErrInvalidArgument, "this endpoint speaks WebSocket: send Upgrade: websocket"))
		return
	}
	proxy := &httputil.ReverseProxy{
		Transport: c.Transport(),
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = "agent"
			pr.Out.URL.Path = "/v1/pty"
			pr.Out.URL.RawPath = ""
			pr.Out.URL.RawQuery = opts.Query().Encode()
			pr.Out.Host = "agent"
			pr.Out.Header.Del("Authorization")
			pr.Out.Header.Del("Cookie")
		},
		ModifyResponse: func(resp *http.Response) error {
			if resp.StatusCode >= 400 {
				// Keep the agent's reason for the access log.
				b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
				resp.Body.Close()
				resp.Body = io.NopCloser(bytes.NewReader(b))
				resp.ContentLength = int64(len(b))
				resp.Header.Set("Content-Length", strconv.Itoa(len(b)))
				var e api.ErrorBody
				if json.Unmarshal(b, &e) == nil {
					logAttrs(r).err = e.Error.Message
				}
			}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if errors.Is(err, r.Context().Err()) {
				return
			}
			writeError(w, r, errdefs.New(errdefs.ErrUnavailable, "sandbox agent unreachable: "+err.Error()))
		},
	}
	proxy.ServeHTTP(w, r)
}

func (s *Server) selfTest(w http.ResponseWriter, r *http.Request, acct store.Account) {
	st, err := s.sandboxes.SelfTest(r.Context(), acct, r.PathValue("id"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}
