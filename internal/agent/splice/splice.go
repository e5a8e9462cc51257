// Package splice joins two connections: the agent uses it between a
// sandbox port and the server, the server between the agent and a tunnel's
// WebSocket, and `chaser forward` between a local connection and a tunnel.
// It imports the standard library only, so the agent stays small.
package splice

import (
	"io"
	"net"
	"sync"
)

// CloseWrite half-closes c when it can (TCP, unix sockets), else closes it.
func CloseWrite(c net.Conn) error {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Close()
}

// Conns copies bytes both ways between a and b. When one side ends its
// stream, the other's write half is closed (a TCP half-close), so protocols
// that send, shut down and then read the answer work where both sides can
// half-close. A failed copy ends both directions. It returns when both
// directions are done, with both connections closed.
func Conns(a, b net.Conn) {
	var wg sync.WaitGroup
	wg.Add(2)
	cp := func(dst, src net.Conn) {
		defer wg.Done()
		buf := make([]byte, 32<<10)
		// Hide ReaderFrom/WriterTo so every write is at most len(buf):
		// a WebSocket side sends one message per write.
		_, err := io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, buf)
		if err != nil {
			a.Close()
			b.Close()
			return
		}
		_ = CloseWrite(dst)
	}
	go cp(a, b)
	go cp(b, a)
	wg.Wait()
	a.Close()
	b.Close()
}
