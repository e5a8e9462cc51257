package connlimit

import (
	"bufio"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"
)

// dialFrom connects to addr from the loopback address src.
func dialFrom(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// refused checks that c is answered 429 with Retry-After and closed.
func refused(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("want a 429 answer: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("got %s, Retry-After %q", resp.Status, resp.Header.Get("Retry-After"))
	}
}

func TestCaps(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu      sync.Mutex
		reasons []string
	)
	l := New(inner, Config{PerClient: 2, Total: 3, Rejected: func(r string) {
		mu.Lock()
		defer mu.Unlock()
		reasons = append(reasons, r)
	}})
	defer l.Close()
	accepted := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	addr := inner.Addr().String()
	next := func() net.Conn {
		t.Helper()
		select {
		case c := <-accepted:
			return c
		case <-time.After(5 * time.Second):
			t.Fatal("no connection accepted")
			return nil
		}
	}

	dialFrom(t, "127.0.0.1", addr)
	first := next()
	dialFrom(t, "127.0.0.1", addr)
	next()
	refused(t, dialFrom(t, "127.0.0.1", addr)) // third from one client
	dialFrom(t, "127.0.0.2", addr)             // another client
	next()
	refused(t, dialFrom(t, "127.0.0.3", addr)) // over the total
	if l.Open() != 3 {
		t.Fatalf("open = %d, want 3", l.Open())
	}

	first.Close() // frees a place of 127.0.0.1 and of the total
	first.Close() // twice frees once
	dialFrom(t, "127.0.0.1", addr)
	next()
	refused(t, dialFrom(t, "127.0.0.1", addr))
	mu.Lock()
	defer mu.Unlock()
	if len(reasons) != 3 || reasons[0] != "client" || reasons[1] != "total" {
		t.Fatalf("rejections %v", reasons)
	}
}

func TestClientOf(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:80":             "127.0.0.1/32",
		"[::ffff:10.0.0.1]:80":     "10.0.0.1/32",
		"[2001:db8:1:2:3::4]:80":   "2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff::]:80": "2001:db8:1:2::/64",
	} {
		a, _ := net.ResolveTCPAddr("tcp", in)
		if got := clientOf(a).String(); got != want {
			t.Errorf("clientOf(%s) = %s, want %s", in, got, want)
		}
	}
}
