// Package connlimit caps the connections an HTTP listener holds open: per
// client address and in total. Without a cap one client with a loop of
// idle connections takes every file descriptor of the server, and then
// nothing answers, /healthz included.
//
// A connection over a cap is accepted, answered with 429 Too Many Requests
// and Retry-After (so HTTP clients see a status, not a reset), and closed.
package connlimit

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chaserhq/chaser/api"
)

// Config says how many connections a Listener holds open. Zero disables a
// cap.
type Config struct {
	// PerClient caps the connections of one client: one IPv4 address, or
	// one IPv6 /64 (a host usually holds a whole /64). Loopback counts like
	// any other address.
	PerClient int
	// Total caps all connections together.
	Total int
	// RetryAfter is the Retry-After of a refusal (1 s when zero).
	RetryAfter time.Duration
	// Rejected, if set, is called for each refused connection with the
	// cap that refused it: "client" or "total".
	Rejected func(reason string)
}

// maxRefusing bounds the refusals being written at once. A refusal holds
// its connection for up to refuseLinger (writing the 429, then draining
// what the client sent so that closing does not reset the answer away);
// past this many, connections are closed without an answer.
const (
	maxRefusing  = 64
	refuseLinger = 500 * time.Millisecond
)

// Listener is a net.Listener that enforces a Config. Closing an accepted
// connection (also after an HTTP hijack) frees its place.
type Listener struct {
	net.Listener
	cfg Config

	mu       sync.Mutex
	open     map[netip.Prefix]int
	total    int
	refusing atomic.Int32
}

// New wraps l.
func New(l net.Listener, cfg Config) *Listener {
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = time.Second
	}
	return &Listener{Listener: l, cfg: cfg, open: map[netip.Prefix]int{}}
}

// Open returns the number of connections held now.
func (l *Listener) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total
}

// Accept returns the next connection within the caps; the others are
// refused on the way.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		key := clientOf(c.RemoteAddr())
		if reason := l.admit(key); reason != "" {
			l.refuse(c, key, reason)
			continue
		}
		return &conn{Conn: c, l: l, key: key}, nil
	}
}

// admit takes a place for key, or says which cap is full.
func (l *Listener) admit(key netip.Prefix) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cfg.Total > 0 && l.total >= l.cfg.Total {
		return "total"
	}
	if l.cfg.PerClient > 0 && l.open[key] >= l.cfg.PerClient {
		return "client"
	}
	l.open[key]++
	l.total++
	return ""
}

func (l *Listener) release(key netip.Prefix) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if l.open[key]--; l.open[key] <= 0 {
		delete(l.open, key)
	}
}

// refuse answers 429 on c and closes it, without holding up Accept.
func (l *Listener) refuse(c net.Conn, key netip.Prefix, reason string) {
	if l.cfg.Rejected != nil {
		l.cfg.Rejected(reason)
	}
	if l.refusing.Add(1) > maxRefusing {
		l.refusing.Add(-1)
		c.Close()
		return
	}
	msg := fmt.Sprintf("too many connections from %s: at most %d at once; close idle connections or retry later", key.Addr(), l.cfg.PerClient)
	if reason == "total" {
		msg = fmt.Sprintf("the server holds its maximum of %d connections; retry later", l.cfg.Total)
	}
	body, _ := json.Marshal(api.ErrorBody{Error: api.ErrorDetail{Code: "resource_exhausted", Message: msg}})
	secs := int((l.cfg.RetryAfter + time.Second - 1) / time.Second)
	answer := "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nRetry-After: " + strconv.Itoa(secs) +
		"\r\nConnection: close\r\nContent-Length: " + strconv.Itoa(len(body)+1) + "\r\n\r\n" + string(body) + "\n"
	go func() {
		defer l.refusing.Add(-1)
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(refuseLinger))
		if _, err := io.WriteString(c, answer); err != nil {
			return
		}
		if cw, ok := c.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(c, 64<<10))
	}()
}

// clientOf is the key a remote address counts under: the IPv4 address, or
// the IPv6 /64.
func clientOf(a net.Addr) netip.Prefix {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Prefix{}
	}
	ip := ap.Addr().Unmap().WithZone("")
	if ip.Is4() {
		return netip.PrefixFrom(ip, 32)
	}
	p, _ := ip.Prefix(64)
	return p
}

// conn frees its place in the listener when closed.
type conn struct {
	net.Conn
	l    *Listener
	key  netip.Prefix
	once sync.Once
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.key) })
	return err
}

// CloseWrite passes a TCP half-close through: net/http uses it to close
// connections gracefully.
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// ReadFrom keeps the TCP connection's sendfile and splice paths.
func (c *conn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(c.Conn, r)
}
