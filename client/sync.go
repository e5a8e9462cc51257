package client

import (
	"context"
	"io"
	"net/http"
	"net/url"

	"github.com/chaserhq/chaser/api"
)

// Manifest describes the tree at sandbox directory root of session id
// (every entry, relative to root; SHA-256 of regular files when hash).
// A missing root gives Exists false and no entries; Error is set when the
// server's walk stopped early.
func (c *Client) Manifest(ctx context.Context, id, root string, hash bool) (api.Manifest, error) {
	q := url.Values{"path": {root}}
	if !hash {
		q.Set("hash", "false")
	}
	resp, err := c.Request(ctx, http.MethodGet, sessionPath(id, "files", "manifest")+"?"+q.Encode(), nil, "")
	if err != nil {
		return api.Manifest{}, err
	}
	return decodeAnswer[api.Manifest](resp)
}

// HashFiles returns the SHA-256 of the regular files among paths
// (relative to root); others are left out.
func (c *Client) HashFiles(ctx context.Context, id, root string, paths []string) (map[string]string, error) {
	var h api.Hashes
	err := c.call(ctx, http.MethodPost, sessionPath(id, "files", "hashes")+"?"+url.Values{"path": {root}}.Encode(), api.HashesRequest{Paths: paths}, &h)
	return h.Hashes, err
}

// Archive streams the tar stream r (sent chunked) into sandbox directory
// root of session id. Entries that could not be applied (over the
// server's limit, escaping root, …) are in the answer's Errors.
func (c *Client) Archive(ctx context.Context, id, root string, r io.Reader) (api.ArchiveResult, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.BaseURL+sessionPath(id, "files", "archive")+"?"+url.Values{"path": {root}}.Encode(), r)
	if err != nil {
		return api.ArchiveResult{}, err
	}
	req.ContentLength = -1
	req.Header.Set("Content-Type", "application/x-tar")
	resp, err := c.send(req)
	if err != nil {
		return api.ArchiveResult{}, err
	}
	return decodeAnswer[api.ArchiveResult](resp)
}

// Prune removes paths (relative to root) with everything beneath them.
func (c *Client) Prune(ctx context.Context, id, root string, paths []string) (api.PruneResult, error) {
	var res api.PruneResult
	err := c.call(ctx, http.MethodPost, sessionPath(id, "files", "prune")+"?"+url.Values{"path": {root}}.Encode(), api.PruneRequest{Paths: paths}, &res)
	return res, err
}
