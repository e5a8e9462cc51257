// Package tunnel is the wire format of a TCP connection carried over a
// WebSocket (GET /v1/sessions/{id}/tunnel/{port}, used by `chaser forward`):
// binary messages are the connection's bytes, in order; a text message
// "eof" says its sender will send no more bytes (a TCP half-close), while
// it may still receive. Closing the WebSocket ends the connection. Both the
// server and the client wrap their WebSocket in a Conn, so half-closes
// travel end to end and protocols that send, shut down and then read work.
package tunnel

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// EOF is the text message that half-closes a direction.
const EOF = "eof"

// ReadLimit bounds one message. Writers send at most 32 KiB per message
// (the splice buffer); the margin is for other clients.
const ReadLimit = 1 << 20

// Conn is a net.Conn over a tunnel WebSocket, with CloseWrite.
type Conn struct {
	ws  *websocket.Conn
	ctx context.Context

	rmu  sync.Mutex
	r    io.Reader // the message being read
	rEOF bool      // the peer half-closed

	wmu     sync.Mutex
	wClosed bool
}

// New wraps ws. ctx bounds the connection's life: when it ends, the
// WebSocket is closed.
func New(ctx context.Context, ws *websocket.Conn) *Conn {
	ws.SetReadLimit(ReadLimit)
	return &Conn{ws: ws, ctx: ctx}
}

// Read reads the peer's bytes; io.EOF after the peer's half-close or a
// normal close.
func (c *Conn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	for {
		if c.rEOF {
			return 0, io.EOF
		}
		if c.r == nil {
			typ, r, err := c.ws.Reader(c.ctx)
			if err != nil {
				switch websocket.CloseStatus(err) {
				case websocket.StatusNormalClosure, websocket.StatusGoingAway:
					return 0, io.EOF
				}
				return 0, err
			}
			if typ == websocket.MessageText {
				msg, err := io.ReadAll(io.LimitReader(r, 64))
				if err != nil {
					return 0, err
				}
				if string(msg) == EOF {
					c.rEOF = true
				}
				continue // other text messages are reserved: skip them
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if errors.Is(err, io.EOF) {
			c.r = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

// Write sends p as one binary message.
func (c *Conn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.wClosed {
		return 0, net.ErrClosed
	}
	if err := c.ws.Write(c.ctx, websocket.MessageBinary, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// CloseWrite tells the peer no more bytes come (a half-close).
func (c *Conn) CloseWrite() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.wClosed {
		return nil
	}
	c.wClosed = true
	return c.ws.Write(c.ctx, websocket.MessageText, []byte(EOF))
}

// Close ends the connection with a normal WebSocket close.
func (c *Conn) Close() error { return c.ws.Close(websocket.StatusNormalClosure, "") }

type addr struct{}

func (addr) Network() string { return "websocket" }
func (addr) String() string  { return "websocket" }

// LocalAddr and RemoteAddr are placeholders: the tunnel's ends are named
// by the HTTP request that opened it.
func (c *Conn) LocalAddr() net.Addr  { return addr{} }
func (c *Conn) RemoteAddr() net.Addr { return addr{} }

// Deadlines are not supported; use Close or the context given to New.
func (c *Conn) SetDeadline(time.Time) error      { return errors.ErrUnsupported }
func (c *Conn) SetReadDeadline(time.Time) error  { return errors.ErrUnsupported }
func (c *Conn) SetWriteDeadline(time.Time) error { return errors.ErrUnsupported }
