// Package client is the typed Go client of the Chaser API. The CLI, the MCP
// bridge and the tests use it. Errors carry errdefs classes, so
// errors.Is(err, errdefs.ErrNotFound) works on answers of the server.
package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/errdefs"
)

// DefaultURL is the API address used when CHASER_API_URL is not set.
const DefaultURL = "http://127.0.0.1:8080"

// Client calls one Chaser server with one API key.
type Client struct {
	BaseURL string
	Key     string
	HTTP    *http.Client
}

// New returns a client for baseURL authenticating with key.
func New(baseURL, key string) *Client {
	return &Client{BaseURL: strings.TrimRight(baseURL, "/"), Key: key, HTTP: &http.Client{}}
}

// Request sends a request with the key and returns the response when its
// status is below 300; otherwise the error the server answered.
func (c *Client) Request(ctx context.Context, method, path string, body io.Reader, contentType string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, body)
	if err != nil {
		return nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return c.send(req)
}

// send sends a prepared request with the key and returns the response when
// its status is below 300; otherwise the error the server answered. A
// cancelled request returns the context's error.
func (c *Client) send(req *http.Request) (*http.Response, error) {
	if c.Key != "" {
		req.Header.Set("Authorization", "Bearer "+c.Key)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		if req.Context().Err() != nil {
			return nil, req.Context().Err()
		}
		return nil, fmt.Errorf("cannot reach the Chaser server at %s (is `chaser serve` running? set CHASER_API_URL): %v: %w", c.BaseURL, err, errdefs.ErrUnavailable)
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		return nil, c.readError(resp)
	}
	if isForeignPage(resp) {
		resp.Body.Close()
		return nil, c.foreign(resp)
	}
	return resp, nil
}

// decodeAnswer decodes and closes a JSON answer.
func decodeAnswer[T any](resp *http.Response) (T, error) {
	defer resp.Body.Close()
	var v T
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		return v, fmt.Errorf("bad answer from the server: %w", err)
	}
	return v, nil
}

// call sends in as JSON (when not nil) and decodes the answer into out
// (when not nil).
func (c *Client) call(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	ct := ""
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body, ct = bytes.NewReader(b), "application/json"
	}
	resp, err := c.Request(ctx, method, path, body, ct)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func sessionPath(id string, rest ...string) string {
	p := "/v1/sessions/" + url.PathEscape(id)
	for _, r := range rest {
		p += "/" + r
	}
	return p
}

// Account returns the account of the client's key (GET /v1/account).
func (c *Client) Account(ctx context.Context) (api.Account, error) {
	var a api.Account
	err := c.call(ctx, http.MethodGet, "/v1/account", nil, &a)
	return a, err
}

// Health checks GET /healthz.
func (c *Client) Health(ctx context.Context) error {
	return c.call(ctx, http.MethodGet, "/healthz", nil, nil)
}

// CreateAccount creates an account (admin only); the answer holds its key.
func (c *Client) CreateAccount(ctx context.Context, req api.CreateAccountRequest) (api.Account, error) {
	var a api.Account
	err := c.call(ctx, http.MethodPost, "/v1/accounts", req, &a)
	return a, err
}

// Accounts lists every account (admin only).
func (c *Client) Accounts(ctx context.Context) ([]api.Account, error) {
	var l api.AccountList
	err := c.call(ctx, http.MethodGet, "/v1/accounts", nil, &l)
	return l.Accounts, err
}

// DeleteAccount deletes an account (admin only); force ends its live
// sessions first.
func (c *Client) DeleteAccount(ctx context.Context, id string, force bool) error {
	p := "/v1/accounts/" + url.PathEscape(id)
	if force {
		p += "?force=true"
	}
	return c.call(ctx, http.MethodDelete, p, nil, nil)
}

// CreateSession creates a session.
func (c *Client) CreateSession(ctx context.Context, req api.CreateSessionRequest) (api.Session, error) {
	var s api.Session
	err := c.call(ctx, http.MethodPost, "/v1/sessions", req, &s)
	return s, err
}

// ListOptions selects one page of a list: at most Limit items (0: the
// server's default), after the page that gave NextToken ("" for the
// first); All lists every account's (the admin only; sessions and
// workspaces).
type ListOptions struct {
	Limit     int
	NextToken string
	All       bool
}

// query returns o as a list's query string, with its leading "?".
func (o ListOptions) query() string {
	q := url.Values{}
	if o.Limit > 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	if o.NextToken != "" {
		q.Set("next_token", o.NextToken)
	}
	if o.All {
		q.Set("all", "true")
	}
	if len(q) == 0 {
		return ""
	}
	return "?" + q.Encode()
}

// allPages calls page with each next_token in turn, from the first page to
// the last, and returns every item.
func allPages[T any](ctx context.Context, o ListOptions, page func(context.Context, ListOptions) ([]T, string, error)) ([]T, error) {
	var all []T
	for {
		items, next, err := page(ctx, o)
		if err != nil {
			return all, err
		}
		all = append(all, items...)
		if next == "" {
			return all, nil
		}
		o.NextToken = next
	}
}

// ListSessions lists the account's sessions, page after page.
func (c *Client) ListSessions(ctx context.Context) ([]api.Session, error) {
	return allPages(ctx, ListOptions{}, c.sessionsPage)
}

// ListAllSessions lists every account's sessions (GET /v1/sessions?all=true),
// each with its AccountID, page after page. Only the admin may: others get
// errdefs.ErrPermissionDenied.
func (c *Client) ListAllSessions(ctx context.Context) ([]api.Session, error) {
	return allPages(ctx, ListOptions{All: true}, c.sessionsPage)
}

// SessionsPage returns one page of sessions (GET /v1/sessions?limit=&next_token=).
func (c *Client) SessionsPage(ctx context.Context, o ListOptions) (api.SessionList, error) {
	var l api.SessionList
	err := c.call(ctx, http.MethodGet, "/v1/sessions"+o.query(), nil, &l)
	return l, err
}

func (c *Client) sessionsPage(ctx context.Context, o ListOptions) ([]api.Session, string, error) {
	l, err := c.SessionsPage(ctx, o)
	return l.Sessions, l.NextToken, err
}

// GetSession returns a session.
func (c *Client) GetSession(ctx context.Context, id string) (api.Session, error) {
	var s api.Session
	err := c.call(ctx, http.MethodGet, sessionPath(id), nil, &s)
	return s, err
}

// DeleteSession destroys a session.
func (c *Client) DeleteSession(ctx context.Context, id string) error {
	return c.call(ctx, http.MethodDelete, sessionPath(id), nil, nil)
}

// Exec runs a command: in session id, or targetless (POST /v1/exec) when id
// is empty.
func (c *Client) Exec(ctx context.Context, id string, req api.ExecRequest) (api.ExecResult, error) {
	var res api.ExecResult
	p := "/v1/exec"
	if id != "" {
		p = sessionPath(id, "exec")
	}
	err := c.call(ctx, http.MethodPost, p, req, &res)
	return res, err
}

// ExecStream runs a command in a session and calls fn for each event until
// the exit event, which it returns.
func (c *Client) ExecStream(ctx context.Context, id string, req api.ExecRequest, fn func(api.Event) error) (api.Event, error) {
	req.Stream = true
	b, err := json.Marshal(req)
	if err != nil {
		return api.Event{}, err
	}
	resp, err := c.Request(ctx, http.MethodPost, sessionPath(id, "exec"), bytes.NewReader(b), "application/json")
	if err != nil {
		return api.Event{}, err
	}
	defer resp.Body.Close()
	return readEvents(resp.Body, fn)
}

// readEvents reads NDJSON events until the exit event.
func readEvents(r io.Reader, fn func(api.Event) error) (api.Event, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var ev api.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return api.Event{}, fmt.Errorf("bad event from server: %w", err)
		}
		switch ev.Type {
		case "exit":
			return ev, nil
		case "error":
			return ev, errdefs.New(errdefs.ErrUnavailable, ev.Message)
		}
		if fn != nil {
			if err := fn(ev); err != nil {
				return ev, err
			}
		}
	}
	if err := sc.Err(); err != nil {
		return api.Event{}, err
	}
	return api.Event{}, errdefs.New(errdefs.ErrUnavailable, "the stream ended before the command exited")
}

// StartBackground starts a background command and returns its id.
func (c *Client) StartBackground(ctx context.Context, id string, req api.ExecRequest) (string, error) {
	req.Background = true
	var res api.BackgroundStarted
	err := c.call(ctx, http.MethodPost, sessionPath(id, "exec"), req, &res)
	return res.CommandID, err
}

// Commands lists all of a session's commands, oldest first, page after
// page. Listed command texts are cut (see api.MaxListedCommand).
func (c *Client) Commands(ctx context.Context, id string) ([]api.Command, error) {
	var all []api.Command
	token := ""
	for {
		page, err := c.CommandsPage(ctx, id, 0, token)
		if err != nil {
			return all, err
		}
		all = append(all, page.Commands...)
		if token = page.NextToken; token == "" {
			return all, nil
		}
	}
}

// CommandsPage returns one page of a session's commands: at most limit (0:
// the server's default), after the page that gave nextToken ("" for the
// first).
func (c *Client) CommandsPage(ctx context.Context, id string, limit int, nextToken string) (api.CommandList, error) {
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if nextToken != "" {
		q.Set("next_token", nextToken)
	}
	p := sessionPath(id, "commands")
	if len(q) > 0 {
		p += "?" + q.Encode()
	}
	var l api.CommandList
	err := c.call(ctx, http.MethodGet, p, nil, &l)
	return l, err
}

// Command returns one command.
func (c *Client) Command(ctx context.Context, id, cid string) (api.Command, error) {
	var cmd api.Command
	err := c.call(ctx, http.MethodGet, sessionPath(id, "commands", url.PathEscape(cid)), nil, &cmd)
	return cmd, err
}

// Output opens a command's combined output from offset (raw bytes).
func (c *Client) Output(ctx context.Context, id, cid string, offset int64, follow bool) (io.ReadCloser, error) {
	q := url.Values{"offset": {strconv.FormatInt(offset, 10)}}
	if follow {
		q.Set("follow", "1")
	}
	resp, err := c.Request(ctx, http.MethodGet, sessionPath(id, "commands", url.PathEscape(cid), "output")+"?"+q.Encode(), nil, "")
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// Follow streams a command's events from its start and returns its exit
// event.
func (c *Client) Follow(ctx context.Context, id, cid string, fn func(api.Event) error) (api.Event, error) {
	q := url.Values{"follow": {"1"}, "format": {"ndjson"}}
	resp, err := c.Request(ctx, http.MethodGet, sessionPath(id, "commands", url.PathEscape(cid), "output")+"?"+q.Encode(), nil, "")
	if err != nil {
		return api.Event{}, err
	}
	defer resp.Body.Close()
	return readEvents(resp.Body, fn)
}

// Stdin writes to a background command's stdin.
func (c *Client) Stdin(ctx context.Context, id, cid string, req api.StdinRequest) error {
	return c.call(ctx, http.MethodPost, sessionPath(id, "commands", url.PathEscape(cid), "stdin"), req, nil)
}

// Signal signals a command.
func (c *Client) Signal(ctx context.Context, id, cid, signal string) error {
	return c.call(ctx, http.MethodPost, sessionPath(id, "commands", url.PathEscape(cid), "signal"), api.SignalRequest{Signal: signal}, nil)
}
