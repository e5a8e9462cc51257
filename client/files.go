package client

import (
	"context"
	"io"
	"net/http"
	"net/url"

	"github.com/chaserhq/chaser/api"
)

// Upload stores r at sandbox path remote of session id, as a raw body
// (POST …/upload?path=). size is r's length, or -1 when unknown (sent
// chunked). opts.Mode is octal ("0755") or empty to keep the replaced
// file's; opts.User (a name or uid[:gid]) owns what is created, by default
// the image's user. Known sizes are sent with Expect: 100-continue, so an over-limit upload
// is refused before its body is sent.
func (c *Client) Upload(ctx context.Context, id, remote string, r io.Reader, size int64, opts UploadOptions) (api.FileInfo, error) {
	q := url.Values{"path": {remote}}
	if opts.Mode != "" {
		q.Set("mode", opts.Mode)
	}
	if opts.User != "" {
		q.Set("user", opts.User)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.BaseURL+sessionPath(id, "upload")+"?"+q.Encode(), r)
	if err != nil {
		return api.FileInfo{}, err
	}
	req.ContentLength = size
	if size == 0 {
		req.Body = http.NoBody
	}
	if size > 0 {
		req.Header.Set("Expect", "100-continue")
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := c.send(req)
	if err != nil {
		return api.FileInfo{}, err
	}
	return decodeAnswer[api.FileInfo](resp)
}

// UploadOptions are the optional parts of an upload.
type UploadOptions struct {
	Mode string // octal permission bits; empty keeps the replaced file's (or 0644)
	User string // owner of what is created; empty: the image's user
}

// Download opens sandbox file remote of session id. The caller reads the
// body (Size bytes; a shorter read is a failed transfer) and closes it.
func (c *Client) Download(ctx context.Context, id, remote string) (*http.Response, error) {
	return c.Request(ctx, http.MethodGet, sessionPath(id, "download")+"?"+url.Values{"path": {remote}}.Encode(), nil, "")
}

// ListFiles lists directory remote (its whole tree when recursive).
func (c *Client) ListFiles(ctx context.Context, id, remote string, recursive bool) (api.FileList, error) {
	q := url.Values{"path": {remote}}
	if recursive {
		q.Set("recursive", "true")
	}
	var l api.FileList
	err := c.call(ctx, http.MethodGet, sessionPath(id, "files")+"?"+q.Encode(), nil, &l)
	return l, err
}

// StatFile describes remote without following a final symlink.
func (c *Client) StatFile(ctx context.Context, id, remote string) (api.FileInfo, error) {
	var info api.FileInfo
	err := c.call(ctx, http.MethodGet, sessionPath(id, "files", "stat")+"?"+url.Values{"path": {remote}}.Encode(), nil, &info)
	return info, err
}

// Mkdir creates a directory and its parents.
func (c *Client) Mkdir(ctx context.Context, id string, req api.MkdirRequest) (api.FileInfo, error) {
	var info api.FileInfo
	err := c.call(ctx, http.MethodPost, sessionPath(id, "files", "mkdir"), req, &info)
	return info, err
}

// RemoveFile removes remote (a non-empty directory needs recursive).
func (c *Client) RemoveFile(ctx context.Context, id, remote string, recursive bool) error {
	q := url.Values{"path": {remote}}
	if recursive {
		q.Set("recursive", "true")
	}
	return c.call(ctx, http.MethodDelete, sessionPath(id, "files")+"?"+q.Encode(), nil, nil)
}

// MoveFile renames a file or directory.
func (c *Client) MoveFile(ctx context.Context, id string, req api.MoveRequest) (api.FileInfo, error) {
	var info api.FileInfo
	err := c.call(ctx, http.MethodPost, sessionPath(id, "files", "move"), req, &info)
	return info, err
}
