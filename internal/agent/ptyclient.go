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

// ListeningPorts returns the TCP ports something listens on in the
// sandbox (GET /v1/ports), each with Listening set.
func (c *Client) ListeningPorts(ctx context.Context) ([]api.Port, error) {
	var l api.PortList
	err := c.call(ctx, http.MethodGet, "/v1/ports", nil, &l)
	return l.Ports, err
}

// Stats samples the sandbox's resource use (GET /v1/stats).
func (c *Client) Stats(ctx context.Context) (Stats, error) {
	var s Stats
	err := c.call(ctx, http.MethodGet, "/v1/stats", nil, &s)
	return s, err
}

// SelfTest runs the agent's self-test.
func (c *Client) SelfTest(ctx context.Context) (api.SelfTest, error) {
	var st api.SelfTest
	err := c.call(ctx, http.MethodPost, "/v1/self-test", nil, &st)
	return st, err
}
