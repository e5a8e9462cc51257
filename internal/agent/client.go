package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/errdefs"
	"github.com/chaserhq/chaser/internal/httpjson"
)

// MaxAnswer bounds a JSON answer of the agent that the client decodes: a
// list page stays under 4 MiB and a single command's text under the 1 MiB
// of a request body, however JSON escapes it.
const MaxAnswer = 8 << 20

// Client talks to one sandbox's agent. The server holds one per sandbox.
type Client struct {
	hc *http.Client
}

// NewClient returns a client that reaches the agent through dial (the
// runtime's connection to the sandbox).
func NewClient(dial func(ctx context.Context) (net.Conn, error)) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dial(ctx)
		},
		MaxIdleConnsPerHost: 8,
		DisableCompression:  true,
	}
	return &Client{hc: &http.Client{Transport: tr}}
}

// Close releases idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// Do sends a request to the agent; path is absolute ("/v1/health"). It
// returns the response for any status; the caller closes the body.
func (c *Client) Do(ctx context.Context, method, path string, body io.Reader, header http.Header) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://agent"+path, body)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("sandbox agent unreachable: %v: %w", err, errdefs.ErrUnavailable)
	}
	return resp, nil
}

// call sends a JSON request and decodes a JSON answer into out (if not nil).
func (c *Client) call(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	var h http.Header
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
		h = http.Header{"Content-Type": {"application/json"}}
	}
	resp, err := c.Do(ctx, method, path, body, h)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return httpjson.ReadError(resp)
	}
	if out == nil {
		return nil
	}
	// The sandbox is not trusted to keep its answers small.
	lr := &io.LimitedReader{R: resp.Body, N: MaxAnswer + 1}
	if err := json.NewDecoder(lr).Decode(out); err != nil {
		if lr.N <= 0 {
			return fmt.Errorf("sandbox agent answered %s %s with more than %d bytes: %w", method, path, MaxAnswer, errdefs.ErrUnavailable)
		}
		return fmt.Errorf("sandbox agent answer to %s %s: %v: %w", method, path, err, errdefs.ErrUnavailable)
	}
	return nil
}

// Health asks the agent whether it serves.
func (c *Client) Health(ctx context.Context) (Health, error) {
	var h Health
	err := c.call(ctx, http.MethodGet, "/v1/health", nil, &h)
	return h, err
}

// Start starts a command.
func (c *Client) Start(ctx context.Context, req api.ExecRequest) (api.Command, error) {
	var cmd api.Command
	err := c.call(ctx, http.MethodPost, "/v1/processes", req, &cmd)
	return cmd, err
}

// Run starts a foreground command and opens its NDJSON events from the
// first byte on, paced by the caller (as Output with follow and pace), in
// one round trip; it returns the command's id and the events, which the
// caller closes. An agent older than this call (a sandbox recovered after
// an upgrade) answers the start alone: Run then opens the output itself.
func (c *Client) Run(ctx context.Context, req api.ExecRequest) (string, *http.Response, error) {
	b, err := json.Marshal(req)
	if err != nil {
		return "", nil, err
	}
	resp, err := c.Do(ctx, http.MethodPost, "/v1/processes?follow=1", bytes.NewReader(b), http.Header{"Content-Type": {"application/json"}})
	if err != nil {
		return "", nil, err
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		return "", nil, httpjson.ReadError(resp)
	}
	if id := resp.Header.Get(HeaderCommandID); id != "" {
		return id, resp, nil
	}
	var cmd api.Command
	err = json.NewDecoder(&io.LimitedReader{R: resp.Body, N: MaxAnswer}).Decode(&cmd)
	resp.Body.Close()
	if err != nil || cmd.ID == "" {
		return "", nil, fmt.Errorf("sandbox agent answer to POST /v1/processes: %v: %w", err, errdefs.ErrUnavailable)
	}
	out, err := c.Output(ctx, cmd.ID, 0, true, true, "ndjson")
	return cmd.ID, out, err
}

// Commands returns one page of the commands the agent remembers.
func (c *Client) Commands(ctx context.Context, q CommandQuery) (api.CommandList, error) {
	var l api.CommandList
	err := c.call(ctx, http.MethodGet, "/v1/processes?"+q.values().Encode(), nil, &l)
	return l, err
}

// Command returns one command, or errdefs.ErrNotFound.
func (c *Client) Command(ctx context.Context, id string) (api.Command, error) {
	var cmd api.Command
	err := c.call(ctx, http.MethodGet, "/v1/processes/"+url.PathEscape(id), nil, &cmd)
	return cmd, err
}

// Output opens a command's output from offset; format is "raw" or "ndjson".
// With pace the caller paces a foreground command: it gets every byte, and
// the command waits while the caller reads slowly. The caller closes the
// body.
func (c *Client) Output(ctx context.Context, id string, offset int64, follow, pace bool, format string) (*http.Response, error) {
	q := url.Values{"offset": {strconv.FormatInt(offset, 10)}, "format": {format}}
	if follow {
		q.Set("follow", "1")
	}
	if pace {
		q.Set("pace", "1")
	}
	resp, err := c.Do(ctx, http.MethodGet, "/v1/processes/"+url.PathEscape(id)+"/output?"+q.Encode(), nil, nil)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		return nil, httpjson.ReadError(resp)
	}
	return resp, nil
}

// Stdin writes to a command's stdin.
func (c *Client) Stdin(ctx context.Context, id string, req api.StdinRequest) error {
	return c.call(ctx, http.MethodPost, "/v1/processes/"+url.PathEscape(id)+"/stdin", req, nil)
}

// Signal signals a command's process group.
func (c *Client) Signal(ctx context.Context, id, signal string) error {
	return c.call(ctx, http.MethodPost, "/v1/processes/"+url.PathEscape(id)+"/signal", api.SignalRequest{Signal: signal}, nil)
}
