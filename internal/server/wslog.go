package server

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The access log of a WebSocket: the server proxies the PTY, the tunnel and
// forwarded WebSockets byte for byte over a hijacked connection, so the
// status (101) and the close code are not seen by http.ResponseWriter. The
// statusWriter's Hijack wraps the connection in a wsConn that reads them
// off the bytes as they pass: the status line of the answer, then the
// frame headers of both directions until the first close frame.

// isUpgrade reports whether r asks to switch protocols (WebSocket).
func isUpgrade(r *http.Request) bool {
	if r.Header.Get("Upgrade") == "" {
		return false
	}
	for _, v := range r.Header.Values("Connection") {
		for _, tok := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(tok), "upgrade") {
				return true
			}
		}
	}
	return false
}

// Hijack takes over the connection (WebSocket, tunnel) and records what
// passes over it for the access log.
func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	c := &wsConn{Conn: conn}
	// A 101 written through WriteHeader went out before the hijack;
	// otherwise (ReverseProxy) the answer's status line is the first
	// thing written to the connection.
	c.out.headers = w.status == 0
	if n := brw.Reader.Buffered(); n > 0 {
		b, _ := brw.Reader.Peek(n)
		c.pending = bytes.Clone(b)
	}
	w.ws = c
	return c, bufio.NewReadWriter(bufio.NewReader(c), bufio.NewWriter(c)), nil
}

// wsConn is a hijacked connection that notes the status line written on it
// and the first WebSocket close frame in either direction.
type wsConn struct {
	net.Conn
	pending []byte // read by the server before the hijack

	mu       sync.Mutex
	status   int
	in, out  frameSniffer
	closeBy  string // "client" or "server": who sent the first close frame
	closeCod int
}

func (c *wsConn) Read(p []byte) (int, error) {
	var n int
	var err error
	if len(c.pending) > 0 {
		n = copy(p, c.pending)
		c.pending = c.pending[n:]
	} else {
		n, err = c.Conn.Read(p)
	}
	c.mu.Lock()
	if code, ok := c.in.feed(p[:n]); ok && c.closeBy == "" {
		c.closeBy, c.closeCod = "client", code
	}
	c.mu.Unlock()
	return n, err
}

func (c *wsConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	if c.out.headers && c.status == 0 {
		// "HTTP/1.1 101 Switching Protocols"
		if f := bytes.Fields(p); len(f) >= 2 && bytes.HasPrefix(f[0], []byte("HTTP/")) {
			c.status, _ = strconv.Atoi(string(f[1]))
		}
	}
	if code, ok := c.out.feed(p); ok && c.closeBy == "" {
		c.closeBy, c.closeCod = "server", code
	}
	c.mu.Unlock()
	return c.Conn.Write(p)
}

// closeInfo returns the answer's status (0 when it was not written on the
// connection) and the first close frame: its code (1005 for a close
// without one, 1006 when the connection ended without any) and sender.
func (c *wsConn) closeInfo() (status, code int, by string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closeBy == "" {
		return c.status, 1006, ""
	}
	return c.status, c.closeCod, c.closeBy
}

// frameSniffer follows the WebSocket frames of one direction of a stream
// (RFC 6455 §5.2) just far enough to find the first close frame's code.
// It copes with frames split across any number of writes.
type frameSniffer struct {
	headers bool // an HTTP answer's headers come first
	crlf    int  // how much of "\r\n\r\n" was seen
	done    bool

	hdr  []byte // the header of the frame being read
	skip uint64 // payload bytes still to pass
	// close frame payload: its first two bytes and the mask
	closing bool
	mask    [4]byte
	code    []byte
}

// feed takes the next bytes; it reports the close code once the first
// close frame's code has passed.
func (s *frameSniffer) feed(p []byte) (int, bool) {
	for len(p) > 0 && !s.done {
		if s.headers {
			for i, b := range p {
				if b == "\r\n\r\n"[s.crlf] {
					s.crlf++
				} else if b == '\r' {
					s.crlf = 1
				} else {
					s.crlf = 0
				}
				if s.crlf == 4 {
					s.headers = false
					p = p[i+1:]
					break
				}
			}
			if s.headers {
				return 0, false
			}
			continue
		}
		if s.skip > 0 {
			n := min(uint64(len(p)), s.skip)
			if s.closing {
				for _, b := range p[:n] {
					if len(s.code) == 2 {
						break
					}
					s.code = append(s.code, b^s.mask[len(s.code)%4])
				}
			}
			s.skip -= n
			p = p[n:]
			if s.closing && (len(s.code) == 2 || s.skip == 0) {
				s.done = true
				if len(s.code) < 2 {
					return 1005, true // a close without a code
				}
				return int(binary.BigEndian.Uint16(s.code)), true
			}
			continue
		}
		s.hdr = append(s.hdr, p[0])
		p = p[1:]
		need := 2
		if len(s.hdr) >= 2 {
			switch s.hdr[1] & 0x7f {
			case 126:
				need += 2
			case 127:
				need += 8
			}
			if s.hdr[1]&0x80 != 0 {
				need += 4
			}
		}
		if len(s.hdr) < need {
			continue
		}
		n := uint64(s.hdr[1] & 0x7f)
		ext := s.hdr[2:]
		switch n {
		case 126:
			n, ext = uint64(binary.BigEndian.Uint16(ext)), ext[2:]
		case 127:
			n, ext = binary.BigEndian.Uint64(ext), ext[8:]
		}
		if s.hdr[1]&0x80 != 0 {
			copy(s.mask[:], ext)
		}
		s.closing = s.hdr[0]&0x0f == 0x8
		s.hdr, s.skip = s.hdr[:0], n
		if s.closing && n == 0 {
			s.done = true
			return 1005, true
		}
	}
	return 0, false
}

// settle takes the status of a hijacked connection's answer when it was
// written on the connection rather than through WriteHeader.
func (w *statusWriter) settle() {
	if w.ws != nil && w.status == 0 {
		w.status, _, _ = w.ws.closeInfo()
	}
}

// logAccess writes the access log line of a request. A hijacked connection
// (WebSocket) logs its 101 and the first close frame's code and sender;
// an upgrade refused before the 101 is a warning with the reason, since a
// browser can only show it as close 1006.
func logAccess(log *slog.Logger, r *http.Request, sw *statusWriter, attrs *reqAttrs, rid string, start time.Time) {
	args := []any{"request_id", rid, "method", r.Method, "path", r.URL.Path,
		"status", sw.status, "ms", time.Since(start).Milliseconds(),
		"account", attrs.account, "session_id", r.PathValue("id")}
	if sw.ws != nil {
		_, code, by := sw.ws.closeInfo()
		args = append(args, "ws_close", code, "ws_close_by", by)
	}
	if isUpgrade(r) && sw.status >= 400 {
		args = append(args, "error", attrs.err)
		log.Warn("websocket upgrade refused (a browser sees only close 1006; see docs/terminal.md to check with curl)", args...)
		return
	}
	log.Info("request", args...)
}
