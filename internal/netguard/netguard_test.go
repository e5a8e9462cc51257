package netguard

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestBlocked(t *testing.T) {
	for _, tc := range []struct {
		addr    string
		blocked bool
	}{
		{"127.0.0.1", true},
		{"127.8.9.10", true},
		{"::1", true},
		{"0.0.0.0", true},
		{"::", true},
		{"0.1.2.3", true},
		{"10.1.2.3", true},
		{"172.16.0.1", true},
		{"172.31.255.255", true},
		{"192.168.1.1", true},
		{"169.254.169.254", true},
		{"fe80::1%eth0", true},
		{"fc00::1", true},
		{"fd12:3456::1", true},
		{"100.64.0.1", true},
		{"224.0.0.1", true},
		{"255.255.255.255", true},
		{"ff02::1", true},
		{"::ffff:127.0.0.1", true},
		{"::ffff:10.0.0.1", true},
		{"64:ff9b::7f00:1", true}, // NAT64 of 127.0.0.1
		{"fec0::1", true},
		{"8.8.8.8", false},
		{"172.32.0.1", false},
		{"100.128.0.1", false},
		{"2001:4860:4860::8888", false},
		{"::ffff:8.8.8.8", false},
		{"64:ff9b::808:808", false}, // NAT64 of 8.8.8.8
	} {
		if got := Blocked(netip.MustParseAddr(tc.addr)); got != tc.blocked {
			t.Errorf("Blocked(%s) = %v, want %v", tc.addr, got, tc.blocked)
		}
	}
}

func TestCheckHost(t *testing.T) {
	for _, h := range []string{"registry.example", "registry.example:5000", "127.0.0.1:5000", "[::1]:5000", "localhost"} {
		if err := CheckHost(h); err != nil {
			t.Errorf("CheckHost(%q): %v", h, err)
		}
	}
	for _, h := range []string{"", "http://registry.example", "registry.example/path", "a b", "user@host:5000"} {
		if err := CheckHost(h); err == nil {
			t.Errorf("CheckHost(%q) accepted", h)
		}
	}
	if _, err := New(net.Dialer{}, []string{"ok:1", "https://bad"}); err == nil || !strings.Contains(err.Error(), "https://bad") {
		t.Errorf("New with a bad entry: %v", err)
	}
}

// listen returns a loopback listener that counts accepted connections.
func listen(t *testing.T) (net.Listener, *atomic.Int64) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	var n atomic.Int64
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			c.Close()
		}
	}()
	return l, &n
}

func TestDialer(t *testing.T) {
	listed, listedN := listen(t)
	other, otherN := listen(t)
	_, port, _ := net.SplitHostPort(other.Addr().String())
	d, err := New(net.Dialer{Timeout: 5 * time.Second}, []string{listed.Addr().String(), "Allowed.Example"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := d.DialContext(t.Context(), "tcp", listed.Addr().String())
	if err != nil {
		t.Fatalf("listed address: %v", err)
	}
	c.Close()
	for _, addr := range []string{other.Addr().String(), "localhost:" + port, "[::ffff:127.0.0.1]:" + port, "0.0.0.0:" + port} {
		_, err := d.DialContext(t.Context(), "tcp", addr)
		var refused *RefusedError
		if !errors.As(err, &refused) || !errors.Is(err, ErrRefused) || refused.Addr != addr {
			t.Errorf("dial %s: %v, want a refusal naming it", addr, err)
		}
		if err != nil && strings.Contains(err.Error(), "127.0.0.1:"+port) && !strings.HasPrefix(addr, "127.0.0.1") {
			t.Errorf("refusal of %s reveals the resolved address: %v", addr, err)
		}
	}
	time.Sleep(50 * time.Millisecond)
	if n := otherN.Load(); n != 0 {
		t.Errorf("the unlisted listener got %d connections", n)
	}
	if n := listedN.Load(); n != 1 {
		t.Errorf("the listed listener got %d connections, want 1", n)
	}
	// A host listed without a port stands for its default ports.
	for addr, want := range map[string]bool{"allowed.example:443": true, "allowed.example:80": true, "allowed.example:8443": false} {
		host, p, _ := net.SplitHostPort(addr)
		if got := d.allow[key(host, p)]; got != want {
			t.Errorf("%s listed = %v, want %v", addr, got, want)
		}
	}
}

func TestOwnAddresses(t *testing.T) {
	d, _ := New(net.Dialer{}, nil)
	d.own = func() []netip.Addr { return []netip.Addr{netip.MustParseAddr("203.0.113.7")} }
	if !d.isOwn(netip.MustParseAddr("203.0.113.7")) || !d.isOwn(netip.MustParseAddr("::ffff:203.0.113.7")) {
		t.Error("the host's own public address is not recognised")
	}
	if d.isOwn(netip.MustParseAddr("203.0.113.8")) {
		t.Error("another address counted as the host's own")
	}
	if len(interfaceAddrs()) == 0 {
		t.Error("no interface addresses found (loopback at least)")
	}
}
