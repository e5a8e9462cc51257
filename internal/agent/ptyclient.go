package agent

import (
	"context"
	"net/http"

	"github.com/chaserhq/chaser/api"
)

// Transport is the client's HTTP transport to the agent. The server uses it
// to proxy PTY WebSockets: http.Transport hands back the upgraded
// connection of a 101 answer, so bytes flow through without re-framing.
func (c *Client) Transport() http.RoundTripper { return c.hc.Transport }

// SelfTest asks the agent what a command in the sandbox sees.
func (c *Client) SelfTest(ctx context.Context) (api.SelfTest, error) {
	var st api.SelfTest
	err := c.call(ctx, http.MethodPost, "/v1/self-test", nil, &st)
	return st, err
}
