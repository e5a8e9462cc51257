package agent

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/chaserhq/chaser/internal/errdefs"
	"github.com/chaserhq/chaser/internal/httpjson"
)

// DialPort returns a connection to 127.0.0.1:port inside the sandbox,
// through GET /v1/ports/{port}/dial. Errors: errdefs.ErrInvalidArgument for
// a bad port, errdefs.ErrUnavailable when nothing listens there or the agent
// cannot be reached. ctx bounds only the connecting, not the connection.
func (c *Client) DialPort(ctx context.Context, port int) (net.Conn, error) {
	tr, ok := c.hc.Transport.(*http.Transport)
	if !ok || tr.DialContext == nil {
		return nil, fmt.Errorf("agent client has no dialer: %w", errdefs.ErrInternal)
	}
	// A connection of its own, not one of the pool: after the upgrade it
	// belongs to the caller.
	conn, err := tr.DialContext(ctx, "unix", "agent")
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	req, _ := http.NewRequest(http.MethodGet, "http://agent/v1/ports/"+strconv.Itoa(port)+"/dial", nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", UpgradeTCP)
	br := bufio.NewReader(conn)
	var resp *http.Response
	if err = req.Write(conn); err == nil {
		resp, err = http.ReadResponse(br, req)
	}
	if !stop() || err != nil {
		conn.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("sandbox agent unreachable: %v: %w", err, errdefs.ErrUnavailable)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		defer conn.Close()
		return nil, httpjson.ReadError(resp)
	}
	_ = conn.SetDeadline(time.Time{})
	return &bufferedConn{Conn: conn, r: br}, nil
}
