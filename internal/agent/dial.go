package agent

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/chaserhq/chaser/internal/agent/splice"
	"github.com/chaserhq/chaser/internal/errdefs"
	"github.com/chaserhq/chaser/internal/httpjson"
)

// UpgradeTCP is the Upgrade token of GET /v1/ports/{port}/dial: after the
// 101 answer the connection carries the raw bytes of a TCP connection to
// 127.0.0.1:{port} inside the sandbox.
const UpgradeTCP = "tcp"

// dialTimeout bounds connecting to a port inside the sandbox. Loopback
// either answers at once or refuses; a long wait means a full backlog.
const dialTimeout = 5 * time.Second

// ParsePort reads a TCP port number, or returns errdefs.ErrInvalidArgument
// for anything outside 1–65535.
func ParsePort(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 {
		return 0, errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("port %q is not a TCP port: use a number from 1 to 65535", s))
	}
	return n, nil
}

// dialPort connects to a port on the sandbox's loopback. It tries IPv4
// first and then IPv6, because dev servers that bind "localhost" listen on
// either. A refused connection is errdefs.ErrUnavailable with a message
// saying nothing listens there.
func dialPort(ctx context.Context, port int) (net.Conn, error) {
	var d net.Dialer
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	p := strconv.Itoa(port)
	c, err := d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", p))
	if err == nil {
		return c, nil
	}
	if c6, err6 := d.DialContext(ctx, "tcp", net.JoinHostPort("::1", p)); err6 == nil {
		return c6, nil
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return nil, errdefs.New(errdefs.ErrUnavailable, fmt.Sprintf("nothing is listening on port %d in the sandbox (connection refused); start a server bound to 127.0.0.1:%d or 0.0.0.0:%d", port, port, port))
	}
	return nil, fmt.Errorf("connect to port %d in the sandbox: %v: %w", port, err, errdefs.ErrUnavailable)
}

// dial answers GET /v1/ports/{port}/dial with "Connection: Upgrade" and
// "Upgrade: tcp": it connects to the port inside the sandbox, answers 101
// and then splices bytes both ways until either side closes. Errors come
// before the upgrade, as JSON, so the server can tell the user why.
func (a *Agent) dial(w http.ResponseWriter, r *http.Request) {
	port, err := ParsePort(r.PathValue("port"))
	if err != nil {
		httpjson.WriteError(w, err)
		return
	}
	if !strings.EqualFold(r.Header.Get("Upgrade"), UpgradeTCP) {
		httpjson.WriteError(w, errdefs.New(errdefs.ErrInvalidArgument, "send Connection: Upgrade and Upgrade: tcp"))
		return
	}
	conn, err := dialPort(r.Context(), port)
	if err != nil {
		httpjson.WriteError(w, err)
		return
	}
	hj, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		conn.Close()
		httpjson.WriteError(w, fmt.Errorf("hijack: %v: %w", err, errdefs.ErrInternal))
		return
	}
	_, err = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: " + UpgradeTCP + "\r\n\r\n")
	if err == nil {
		err = brw.Flush()
	}
	if err != nil {
		conn.Close()
		hj.Close()
		return
	}
	// A hijacked connection may keep the server's read deadline; a
	// tunnel may idle for hours. Bytes the caller sent right after the
	// request sit in brw.Reader.
	_ = hj.SetDeadline(time.Time{})
	splice.Conns(conn, &bufferedConn{Conn: hj, r: brw.Reader})
}

// bufferedConn is a connection whose first bytes were already read into r.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// CloseWrite passes half-closes through when the connection supports it.
func (c *bufferedConn) CloseWrite() error { return splice.CloseWrite(c.Conn) }
