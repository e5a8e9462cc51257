package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/errdefs"
	"github.com/chaserhq/chaser/internal/httpjson"
)

// bodyErr remembers why reading an upload body failed, so that the error
// of the body (too large, the client went away) wins over the transport's
// "request canceled" that it causes.
type bodyErr struct {
	r   io.Reader
	err error
}

func (b *bodyErr) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		b.err = err
	}
	return n, err
}

// WriteFile streams body to sandbox path p (size -1 when unknown), a new
// file belonging to user (empty: the image's user). The agent writes it
// atomically; if reading body fails midway the request is
// cut, the agent discards what it got, and that read error is returned.
func (c *Client) WriteFile(ctx context.Context, p, mode, user string, limit int64, body io.Reader, size int64) (api.FileInfo, error) {
	q := url.Values{"path": {p}, "max_size": {strconv.FormatInt(limit, 10)}}
	if mode != "" {
		q.Set("mode", mode)
	}
	if user != "" {
		q.Set("user", user)
	}
	var info api.FileInfo
	err := c.sendBody(ctx, http.MethodPut, "/v1/files/content?"+q.Encode(), "application/octet-stream", body, size, &info)
	return info, err
}

// ReadFile opens sandbox file p for download. The response carries
// Content-Length, Content-Type, Last-Modified and HeaderFileMode; the
// caller closes its body. Errors: ErrNotFound, ErrTooLarge beyond limit,
// ErrInvalidArgument for a directory or special file.
func (c *Client) ReadFile(ctx context.Context, p string, limit int64) (*http.Response, error) {
	q := url.Values{"path": {p}, "max_size": {strconv.FormatInt(limit, 10)}}
	resp, err := c.Do(ctx, http.MethodGet, "/v1/files/content?"+q.Encode(), nil, nil)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		return nil, httpjson.ReadError(resp)
	}
	return resp, nil
}

// ListFiles lists directory p.
func (c *Client) ListFiles(ctx context.Context, p string, recursive bool) (api.FileList, error) {
	q := url.Values{"path": {p}}
	if recursive {
		q.Set("recursive", "1")
	}
	var l api.FileList
	err := c.call(ctx, http.MethodGet, "/v1/files?"+q.Encode(), nil, &l)
	return l, err
}

// StatFile describes p.
func (c *Client) StatFile(ctx context.Context, p string) (api.FileInfo, error) {
	var info api.FileInfo
	err := c.call(ctx, http.MethodGet, "/v1/files/stat?"+url.Values{"path": {p}}.Encode(), nil, &info)
	return info, err
}

// Mkdir creates a directory and its parents; created is false when it
// already existed.
func (c *Client) Mkdir(ctx context.Context, req api.MkdirRequest) (info api.FileInfo, created bool, err error) {
	resp, err := c.Do(ctx, http.MethodPost, "/v1/files/mkdir", jsonBody(req), http.Header{"Content-Type": {"application/json"}})
	if err != nil {
		return info, false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return info, false, httpjson.ReadError(resp)
	}
	err = jsonDecode(resp.Body, &info)
	return info, resp.StatusCode == http.StatusCreated, err
}

// RemoveFile removes p (with its contents when recursive).
func (c *Client) RemoveFile(ctx context.Context, p string, recursive bool) error {
	q := url.Values{"path": {p}}
	if recursive {
		q.Set("recursive", "1")
	}
	return c.call(ctx, http.MethodDelete, "/v1/files?"+q.Encode(), nil, nil)
}

// MoveFile renames a file or directory.
func (c *Client) MoveFile(ctx context.Context, req api.MoveRequest) (api.FileInfo, error) {
	var info api.FileInfo
	err := c.call(ctx, http.MethodPost, "/v1/files/move", req, &info)
	return info, err
}

func jsonBody(v any) io.Reader {
	b, _ := json.Marshal(v)
	return bytes.NewReader(b)
}

func jsonDecode(r io.Reader, v any) error {
	if err := json.NewDecoder(r).Decode(v); err != nil {
		return fmt.Errorf("bad answer from the sandbox agent: %v: %w", err, errdefs.ErrUnavailable)
	}
	return nil
}
