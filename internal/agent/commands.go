package agent

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"unicode/utf8"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/agent/process"
	"github.com/chaserhq/chaser/internal/errdefs"
	"github.com/chaserhq/chaser/internal/httpjson"
)

// Command list pages.
const (
	// DefaultListLimit is the page size of a list without ?limit=.
	DefaultListLimit = 100
	// MaxListLimit is the largest ?limit= accepted.
	MaxListLimit = 1000
	// maxListBytes ends a page early when its JSON grows past it, so an
	// answer stays well under what the server decodes (MaxAnswer).
	maxListBytes = 4 << 20
)

// CommandQuery selects a page of commands.
type CommandQuery struct {
	Limit     int    // 0: DefaultListLimit
	NextToken string // from the previous page; "" for the first
	Status    string // api.CommandRunning, api.CommandExited or "" for all
}

// values returns q as the query of GET /v1/processes.
func (q CommandQuery) values() url.Values {
	v := url.Values{}
	if q.Limit != 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if q.NextToken != "" {
		v.Set("next_token", q.NextToken)
	}
	if q.Status != "" {
		v.Set("status", q.Status)
	}
	return v
}

// ParseCommandQuery reads ?limit=, ?next_token= and ?status=. Bad values are
// errdefs.ErrInvalidArgument.
func ParseCommandQuery(get func(string) string) (CommandQuery, error) {
	q := CommandQuery{Limit: DefaultListLimit, NextToken: get("next_token"), Status: get("status")}
	if s := get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxListLimit {
			return q, errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("limit must be an integer from 1 to %d", MaxListLimit))
		}
		q.Limit = n
	}
	if q.NextToken != "" {
		if _, err := decodeToken(q.NextToken); err != nil {
			return q, err
		}
	}
	switch q.Status {
	case "", api.CommandRunning, api.CommandExited:
	default:
		return q, errdefs.New(errdefs.ErrInvalidArgument, "status must be running or exited")
	}
	return q, nil
}

func encodeToken(seq uint64) string {
	return base64.RawURLEncoding.EncodeToString([]byte("c" + strconv.FormatUint(seq, 10)))
}

func decodeToken(tok string) (uint64, error) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err == nil && len(b) > 1 && b[0] == 'c' {
		if seq, err := strconv.ParseUint(string(b[1:]), 10, 64); err == nil {
			return seq, nil
		}
	}
	return 0, errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("next_token %q is not one a list gave; leave it out for the first page", tok))
}

// listProcesses answers one page of commands, oldest first, without output
// and with command texts cut to api.MaxListedCommand bytes.
func (a *Agent) listProcesses(w http.ResponseWriter, r *http.Request) {
	q, err := ParseCommandQuery(r.URL.Query().Get)
	if err != nil {
		httpjson.WriteError(w, err)
		return
	}
	var after uint64
	if q.NextToken != "" {
		after, _ = decodeToken(q.NextToken)
	}
	var match func(*process.Process) bool
	if q.Status != "" {
		match = func(p *process.Process) bool { return (q.Status == api.CommandExited) == p.Exited() }
	}
	ps, more := a.procs.Page(after, q.Limit, match)
	page := struct {
		Commands  []json.RawMessage `json:"commands"`
		NextToken string            `json:"next_token,omitempty"`
	}{Commands: []json.RawMessage{}}
	size, last := 0, uint64(0)
	for i, p := range ps {
		b, err := json.Marshal(listed(p.Info()))
		if err != nil {
			httpjson.WriteError(w, err)
			return
		}
		if i > 0 && size+len(b) > maxListBytes {
			more = true
			break
		}
		page.Commands = append(page.Commands, b)
		size += len(b)
		last = p.Seq
	}
	if more {
		page.NextToken = encodeToken(last)
	}
	httpjson.Write(w, http.StatusOK, page)
}

// listed cuts a command's text for a list, at a character boundary.
func listed(c api.Command) api.Command {
	if len(c.Command) <= api.MaxListedCommand {
		return c
	}
	cut := api.MaxListedCommand
	for cut > 0 && !utf8.RuneStart(c.Command[cut]) {
		cut--
	}
	c.Command = c.Command[:cut]
	c.CommandTruncated = true
	return c
}
