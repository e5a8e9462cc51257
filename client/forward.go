package client

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/coder/websocket"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/errdefs"
	"github.com/chaserhq/chaser/internal/httpjson"
	"github.com/chaserhq/chaser/internal/tunnel"
)

// SetPortPublic makes a port of a session public (reachable through its
// forward URLs without credentials) or private.
func (c *Client) SetPortPublic(ctx context.Context, id string, port int, public bool) (api.Port, error) {
	var p api.Port
	err := c.call(ctx, http.MethodPut, sessionPath(id, "ports", strconv.Itoa(port)), api.SetPortRequest{Public: public}, &p)
	return p, err
}

// Port returns the settings and forward URLs of a session's port.
func (c *Client) Port(ctx context.Context, id string, port int) (api.Port, error) {
	var p api.Port
	err := c.call(ctx, http.MethodGet, sessionPath(id, "ports", strconv.Itoa(port)), nil, &p)
	return p, err
}

// Ports lists a session's ports that have settings (the public ones).
func (c *Client) Ports(ctx context.Context, id string) ([]api.Port, error) {
	var l api.PortList
	err := c.call(ctx, http.MethodGet, sessionPath(id, "ports"), nil, &l)
	return l.Ports, err
}

// Tunnel opens a raw TCP connection to 127.0.0.1:port inside session id,
// carried by the WebSocket GET /v1/sessions/{id}/tunnel/{port} (format:
// package tunnel; CloseWrite half-closes). The connection lives until it
// is closed or ctx ends. Errors keep the
// server's class: ErrUnavailable when nothing listens on the port,
// ErrNotFound for an unknown session, ErrInvalidArgument for a bad port.
func (c *Client) Tunnel(ctx context.Context, id string, port int) (net.Conn, error) {
	u := c.BaseURL + sessionPath(id, "tunnel", strconv.Itoa(port))
	u = "ws" + strings.TrimPrefix(u, "http") // http→ws, https→wss
	h := http.Header{}
	if c.Key != "" {
		h.Set("Authorization", "Bearer "+c.Key)
	}
	ws, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{
		HTTPClient: c.HTTP, HTTPHeader: h, CompressionMode: websocket.CompressionDisabled,
	})
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			return nil, httpjson.ReadError(resp)
		}
		return nil, fmt.Errorf("cannot open a tunnel through %s: %v: %w", c.BaseURL, err, errdefs.ErrUnavailable)
	}
	return tunnel.New(ctx, ws), nil
}
