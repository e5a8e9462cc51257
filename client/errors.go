package client

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/errdefs"
	"github.com/chaserhq/chaser/internal/httpjson"
)

// readError turns an error answer into an error of its class. Chaser
// answers errors as JSON and marks every answer with X-Request-Id; an
// answer that is neither comes from something else at BaseURL (another
// web server, a proxy's error page), so its body is not shown: the error
// says the status and that the URL is probably wrong.
func (c *Client) readError(resp *http.Response) error {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var body api.ErrorBody
	isErr := json.Unmarshal(data, &body) == nil && body.Error.Code != ""
	if !isErr && resp.Header.Get("X-Request-Id") == "" {
		return c.foreign(resp)
	}
	resp.Body = io.NopCloser(bytes.NewReader(data))
	return httpjson.ReadError(resp)
}

// foreign is the error for an answer that did not come from Chaser.
func (c *Client) foreign(resp *http.Response) error {
	what := resp.Status
	if ct, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err == nil {
		what += " (" + ct + ")"
	}
	return errdefs.New(errdefs.ErrUnavailable, fmt.Sprintf(
		"%s answered %s %s with %s: this does not look like a Chaser server; check CHASER_API_URL or the profile's URL (chaser auth status)",
		c.BaseURL, resp.Request.Method, resp.Request.URL.Path, what))
}

// isForeignPage reports whether a successful answer is a web page that
// Chaser never sends: HTML without Chaser's X-Request-Id.
func isForeignPage(resp *http.Response) bool {
	ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	return resp.Header.Get("X-Request-Id") == "" && ct == "text/html"
}
