package agent

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/errdefs"
	"github.com/chaserhq/chaser/internal/httpjson"
)

// Manifest opens the manifest of the tree at root (an api.Manifest JSON
// object, streamed); limit is reported as its max_file_size. The caller
// closes the body.
func (c *Client) Manifest(ctx context.Context, root string, hash bool, limit int64) (*http.Response, error) {
	q := url.Values{"path": {root}, "max_size": {formatInt(limit)}}
	if !hash {
		q.Set("hash", "0")
	}
	resp, err := c.Do(ctx, http.MethodGet, "/v1/files/manifest?"+q.Encode(), nil, nil)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		return nil, httpjson.ReadError(resp)
	}
	return resp, nil
}

// HashFiles returns the SHA-256 of the regular files among paths beneath
// root.
func (c *Client) HashFiles(ctx context.Context, root string, paths []string) (api.Hashes, error) {
	var h api.Hashes
	err := c.call(ctx, http.MethodPost, "/v1/files/hashes?"+url.Values{"path": {root}}.Encode(), api.HashesRequest{Paths: paths}, &h)
	return h, err
}

// Extract streams the tar body to be applied beneath root, refusing files
// over limit. If reading body fails midway, the request is cut and that
// read error is returned; what the agent applied before stays.
func (c *Client) Extract(ctx context.Context, root string, limit int64, body io.Reader) (api.ArchiveResult, error) {
	q := url.Values{"path": {root}, "max_size": {formatInt(limit)}}
	var res api.ArchiveResult
	err := c.sendBody(ctx, http.MethodPost, "/v1/files/archive?"+q.Encode(), "application/x-tar", body, -1, &res)
	return res, err
}

// sendBody streams body (size bytes, -1 when unknown) to the agent and
// decodes its JSON answer into out. If reading body fails, the request is
// cut and that read error wins over the transport's "request canceled"
// that it causes.
func (c *Client) sendBody(ctx context.Context, method, path, contentType string, body io.Reader, size int64, out any) error {
	b := &bodyErr{r: body}
	req, err := http.NewRequestWithContext(ctx, method, "http://agent"+path, b)
	if err != nil {
		return err
	}
	req.ContentLength = size
	if size == 0 {
		req.Body = http.NoBody
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := c.hc.Do(req)
	if b.err != nil {
		if resp != nil {
			resp.Body.Close()
		}
		return b.err
	}
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("sandbox agent unreachable: %v: %w", err, errdefs.ErrUnavailable)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return httpjson.ReadError(resp)
	}
	return jsonDecode(resp.Body, out)
}

// Prune removes paths beneath root with everything beneath them.
func (c *Client) Prune(ctx context.Context, root string, paths []string) (api.PruneResult, error) {
	var res api.PruneResult
	err := c.call(ctx, http.MethodPost, "/v1/files/prune?"+url.Values{"path": {root}}.Encode(), api.PruneRequest{Paths: paths}, &res)
	return res, err
}
