package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/coder/websocket"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/errdefs"
	"github.com/chaserhq/chaser/internal/httpjson"
)

// PTYOptions say which terminal to open.
type PTYOptions struct {
	Mode       string // api.PTYMode*; empty is human
	Command    string // exec mode
	Cwd        string
	User       string // a name or uid[:gid]; empty: the image's user
	Cols, Rows int    // 0: the server's default
	// PTYID reattaches to a terminal within its reconnect grace; Offset
	// (when Resume is set) says where to resume, see PTY.Resume.
	PTYID  string
	Offset int64
	Resume bool
}

// PTY is an open terminal WebSocket.
type PTY struct {
	c *websocket.Conn
	// ID names the terminal for reconnecting; Mode is its mode.
	ID   string
	Mode string
	// start is the stream offset of this connection; received counts the
	// bytes of frames read since.
	start, received int64
}

// DialPTY opens GET /v1/sessions/{id}/pty. Errors before the upgrade carry
// their errdefs class (errors.Is(err, errdefs.ErrNotFound)).
func (c *Client) DialPTY(ctx context.Context, id string, o PTYOptions) (*PTY, error) {
	q := url.Values{}
	for k, v := range map[string]string{"mode": o.Mode, "command": o.Command, "cwd": o.Cwd, "pty_id": o.PTYID, "user": o.User} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if o.Cols > 0 {
		q.Set("cols", strconv.Itoa(o.Cols))
	}
	if o.Rows > 0 {
		q.Set("rows", strconv.Itoa(o.Rows))
	}
	if o.Resume {
		q.Set("offset", strconv.FormatInt(o.Offset, 10))
	}
	u := "ws" + strings.TrimPrefix(c.BaseURL, "http") + sessionPath(id, "pty") + "?" + q.Encode()
	h := http.Header{}
	if c.Key != "" {
		h.Set("Authorization", "Bearer "+c.Key)
	}
	ws, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPHeader: h, HTTPClient: c.HTTP, CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		if resp != nil && resp.StatusCode >= 300 {
			return nil, httpjson.ReadError(resp)
		}
		return nil, fmt.Errorf("cannot open a terminal at %s: %v: %w", c.BaseURL, err, errdefs.ErrUnavailable)
	}
	ws.SetReadLimit(16 << 20)
	p := &PTY{c: ws}
	_, m, err := p.Next(ctx)
	if err != nil {
		ws.CloseNow()
		return nil, err
	}
	if m == nil || m.Type != api.PTYOpen || m.Offset == nil {
		ws.CloseNow()
		return nil, fmt.Errorf("server did not open the terminal (first frame %+v): %w", m, errdefs.ErrUnavailable)
	}
	p.ID, p.Mode, p.start, p.received = m.PTYID, m.Mode, *m.Offset, 0
	return p, nil
}

// Next reads the next frame: terminal bytes, or a control message. An
// error message from the server becomes an error of its class; a closed
// connection an error too (after the exit message it is a normal close,
// websocket.CloseStatus(err) == websocket.StatusNormalClosure).
func (p *PTY) Next(ctx context.Context) ([]byte, *api.PTYMessage, error) {
	typ, data, err := p.c.Read(ctx)
	if err != nil {
		return nil, nil, err
	}
	p.received += int64(len(data))
	if typ == websocket.MessageBinary {
		return data, nil, nil
	}
	var m api.PTYMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, nil, fmt.Errorf("bad control frame from server %q: %w", data, errdefs.ErrUnavailable)
	}
	if m.Type == api.PTYError {
		return nil, &m, errdefs.New(errdefs.FromCode(m.Error), m.Message)
	}
	return nil, &m, nil
}

// Resume is the offset to pass (PTYOptions.Offset, Resume) when
// reconnecting so that exactly the missed frames are replayed.
func (p *PTY) Resume() int64 { return p.start + p.received }

// Write types bytes on the terminal.
func (p *PTY) Write(ctx context.Context, b []byte) error {
	return p.c.Write(ctx, websocket.MessageBinary, b)
}

func (p *PTY) control(ctx context.Context, m api.PTYMessage) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return p.c.Write(ctx, websocket.MessageText, b)
}

// Resize sets the terminal size.
func (p *PTY) Resize(ctx context.Context, cols, rows int) error {
	return p.control(ctx, api.PTYMessage{Type: api.PTYResize, Cols: cols, Rows: rows})
}

// Signal signals the terminal's foreground process group.
func (p *PTY) Signal(ctx context.Context, sig string) error {
	return p.control(ctx, api.PTYMessage{Type: api.PTYSignal, Signal: sig})
}

// Run queues a command (agent mode); its "done" message carries id.
func (p *PTY) Run(ctx context.Context, id, command string) error {
	return p.control(ctx, api.PTYMessage{Type: api.PTYRun, ID: id, Command: command})
}

// RunCommand runs one command in agent mode and waits for it: its output
// and its "done" message. Output of other frames before it is included.
func (p *PTY) RunCommand(ctx context.Context, command string) ([]byte, api.PTYMessage, error) {
	if err := p.Run(ctx, "", command); err != nil {
		return nil, api.PTYMessage{}, err
	}
	var out bytes.Buffer
	for {
		data, m, err := p.Next(ctx)
		if err != nil {
			return out.Bytes(), api.PTYMessage{}, err
		}
		out.Write(data)
		if m == nil {
			continue
		}
		switch m.Type {
		case api.PTYDone:
			return out.Bytes(), *m, nil
		case api.PTYExit:
			return out.Bytes(), *m, fmt.Errorf("the shell exited (code %d): %w", derefCode(m.Code), errdefs.ErrFailedPrecondition)
		}
	}
}

func derefCode(p *int) int {
	if p == nil {
		return -1
	}
	return *p
}

// Close closes the connection; the terminal lives on for its reconnect
// grace unless it has exited.
func (p *PTY) Close() error { return p.c.Close(websocket.StatusNormalClosure, "") }

// CloseNow drops the connection without a close handshake.
func (p *PTY) CloseNow() error { return p.c.CloseNow() }

// SelfTest runs the sandbox self-test of session id.
func (c *Client) SelfTest(ctx context.Context, id string) (api.SelfTest, error) {
	var st api.SelfTest
	err := c.call(ctx, http.MethodPost, sessionPath(id, "self-test"), nil, &st)
	return st, err
}
