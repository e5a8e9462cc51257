package server

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/agent"
	"github.com/chaserhq/chaser/internal/errdefs"
	"github.com/chaserhq/chaser/internal/httpjson"
	"github.com/chaserhq/chaser/internal/store"
)

func (s *Server) execTargetless(w http.ResponseWriter, r *http.Request, acct store.Account) {
	var req api.ExecRequest
	if !decode(w, r, &req) {
		return
	}
	res, err := s.sandboxes.ExecTargetless(r.Context(), acct, req)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (s *Server) execInSession(w http.ResponseWriter, r *http.Request, acct store.Account) {
	var req api.ExecRequest
	if !decode(w, r, &req) {
		return
	}
	id := r.PathValue("id")
	switch {
	case req.Background:
		cmd, err := s.sandboxes.Start(r.Context(), acct, id, req)
		if err != nil {
			writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusAccepted, api.BackgroundStarted{SessionID: id, CommandID: cmd.ID})
	case req.Stream:
		s.execStream(w, r, acct, id, req)
	default:
		res, err := s.sandboxes.Exec(r.Context(), acct, id, req)
		if err != nil {
			writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, res)
	}
}

// execStream answers with NDJSON events as the command produces them. Until
// the first event the answer can still be an error; after it, errors become
// an "error" event.
func (s *Server) execStream(w http.ResponseWriter, r *http.Request, acct store.Account, id string, req api.ExecRequest) {
	rc := http.NewResponseController(w)
	enc := json.NewEncoder(w)
	started := false
	begin := func() {
		if !started {
			started = true
			w.Header().Set("Content-Type", "application/x-ndjson")
			w.Header().Set("X-Content-Type-Options", "nosniff")
			w.WriteHeader(http.StatusOK)
		}
	}
	cmd, err := s.sandboxes.Run(r.Context(), acct, id, req, func(ev api.Event) error {
		begin()
		if err := enc.Encode(ev); err != nil {
			return err
		}
		return rc.Flush()
	})
	if cmd.ID != "" && !started {
		// The command started but produced no event before failing.
		begin()
	}
	if err != nil {
		if !started {
			writeError(w, r, err)
			return
		}
		_ = enc.Encode(api.Event{Type: "error", Message: httpjson.Message(err)})
	}
}

// listCommands answers a page of a session's commands (?limit=,
// ?next_token=, ?status=running|exited), without output and with command
// texts cut; the single-command endpoint has the whole text.
func (s *Server) listCommands(w http.ResponseWriter, r *http.Request, acct store.Account) {
	c, _, err := s.sandboxes.Agent(r.Context(), acct, r.PathValue("id"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	q, err := agent.ParseCommandQuery(r.URL.Query().Get)
	if err != nil {
		writeError(w, r, err)
		return
	}
	list, err := c.Commands(r.Context(), q)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, list)
}

func (s *Server) getCommand(w http.ResponseWriter, r *http.Request, acct store.Account) {
	c, _, err := s.sandboxes.Agent(r.Context(), acct, r.PathValue("id"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	cmd, err := c.Command(r.Context(), r.PathValue("cid"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, cmd)
}

// commandOutput streams a command's output: raw combined bytes by default,
// NDJSON events with ?format=ndjson; ?offset=N resumes, ?follow=1 streams
// until the command exits.
func (s *Server) commandOutput(w http.ResponseWriter, r *http.Request, acct store.Account) {
	c, _, err := s.sandboxes.Agent(r.Context(), acct, r.PathValue("id"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	q := r.URL.Query()
	var off int64
	if v := q.Get("offset"); v != "" {
		off, err = strconv.ParseInt(v, 10, 64)
		if err != nil || off < 0 {
			writeError(w, r, errdefs.New(errdefs.ErrInvalidArgument, "offset must be a non-negative integer"))
			return
		}
	}
	format := q.Get("format")
	if format == "" {
		format = "raw"
	}
	if format != "raw" && format != "ndjson" {
		writeError(w, r, errdefs.New(errdefs.ErrInvalidArgument, "format must be raw or ndjson"))
		return
	}
	follow := q.Get("follow") == "1" || q.Get("follow") == "true"
	resp, err := c.Output(r.Context(), r.PathValue("cid"), off, follow, false, format)
	if err != nil {
		writeError(w, r, err)
		return
	}
	defer resp.Body.Close()
	for _, h := range []string{"Content-Type", "X-Output-Start"} {
		w.Header().Set(h, resp.Header.Get(h))
	}
	for k := range resp.Trailer {
		w.Header().Add("Trailer", k)
	}
	w.WriteHeader(http.StatusOK)
	flushCopy(w, resp.Body)
	// A raw stream that fell behind ends at the gap and says so.
	for k, v := range resp.Trailer {
		if len(v) > 0 && v[0] != "" {
			w.Header().Set(k, v[0])
		}
	}
}

// flushCopy copies src to w, flushing after every read so streams are live.
func flushCopy(w http.ResponseWriter, src io.Reader) {
	rc := http.NewResponseController(w)
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			_ = rc.Flush()
		}
		if err != nil {
			return
		}
	}
}

func (s *Server) commandStdin(w http.ResponseWriter, r *http.Request, acct store.Account) {
	var req api.StdinRequest
	if !decode(w, r, &req) {
		return
	}
	c, _, err := s.sandboxes.Agent(r.Context(), acct, r.PathValue("id"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	if err := c.Stdin(r.Context(), r.PathValue("cid"), req); err != nil {
		writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) commandSignal(w http.ResponseWriter, r *http.Request, acct store.Account) {
	var req api.SignalRequest
	if !decode(w, r, &req) {
		return
	}
	c, _, err := s.sandboxes.Agent(r.Context(), acct, r.PathValue("id"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	if err := c.Signal(r.Context(), r.PathValue("cid"), req.Signal); err != nil {
		writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
