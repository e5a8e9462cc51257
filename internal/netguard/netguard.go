// Package netguard keeps connections the server makes on behalf of users
// (image pulls) away from addresses only the host itself should reach:
// loopback, private, link-local and other special ranges, and the host's
// own interface addresses. Otherwise any account could make the server
// send requests to services on the host or its network, and tell open
// ports from closed ones by the answers.
//
// The check runs at dial time on the address actually connected to, after
// name resolution (net.Dialer.Control), so a name that resolves to a
// private address, DNS rebinding and redirects are all covered, not only
// what a reference says. Hosts the operator lists are dialled whatever
// their address.
package netguard

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
)

// ErrRefused is matched (errors.Is) by every refusal of a Dialer.
var ErrRefused = errors.New("address refused")

// RefusedError is a dial the guard refused. It names the address as it
// was asked for (host:port), never whether anything listens there.
type RefusedError struct {
	Addr string // host:port as dialled
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("dial %s refused: a loopback, private, link-local or this host's own address, and not listed by the operator", e.Addr)
}

// Is makes errors.Is(err, ErrRefused) hold.
func (e *RefusedError) Is(target error) bool { return target == ErrRefused }

// Dialer dials TCP like net.Dialer, refusing non-public addresses except
// for the listed hosts.
type Dialer struct {
	base  net.Dialer
	allow map[string]bool // "host:port", host lower-case
	// own returns the host's interface addresses (net.InterfaceAddrs by
	// default); asked at each guarded dial, so new addresses count.
	own func() []netip.Addr
}

// New returns a Dialer that lets through, whatever their address, the
// hosts in allow: HOST:PORT, or HOST for its default ports 443 and 80 (as
// a registry without a port is written in image references). base holds
// the timeouts and keep-alive of every dial. New returns an error naming
// the first malformed entry.
func New(base net.Dialer, allow []string) (*Dialer, error) {
	d := &Dialer{base: base, allow: map[string]bool{}, own: interfaceAddrs}
	for _, h := range allow {
		if err := CheckHost(h); err != nil {
			return nil, err
		}
		host, port, err := net.SplitHostPort(h)
		if err != nil {
			d.allow[key(h, "443")] = true
			d.allow[key(h, "80")] = true
			continue
		}
		d.allow[key(host, port)] = true
	}
	return d, nil
}

// CheckHost reports whether h is HOST or HOST:PORT, as a registry is
// written in image references (no scheme, no path).
func CheckHost(h string) error {
	u, err := url.Parse("//" + h)
	if err != nil || u.Host != h || h == "" || strings.ContainsAny(h, "/ @") {
		return fmt.Errorf("%q: want HOST or HOST:PORT (no scheme, no path)", h)
	}
	return nil
}

func key(host, port string) string {
	return net.JoinHostPort(strings.ToLower(strings.Trim(host, "[]")), port)
}

// DialContext dials addr (host:port) on network. Unless addr's host and
// port are listed, every address it resolves to is checked just before
// the connection is made, and a non-public one fails the dial with a
// *RefusedError (no packet is sent to it).
func (d *Dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	if host, port, err := net.SplitHostPort(addr); err == nil && d.allow[key(host, port)] {
		return d.base.DialContext(ctx, network, addr)
	}
	nd := d.base
	nd.Control = func(_, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil || Blocked(ap.Addr()) || d.isOwn(ap.Addr()) {
			return &RefusedError{Addr: addr}
		}
		return nil
	}
	c, err := nd.DialContext(ctx, network, addr)
	var refused *RefusedError
	if errors.As(err, &refused) {
		return nil, refused // without the resolved address and errno
	}
	return c, err
}

func (d *Dialer) isOwn(a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	for _, o := range d.own() {
		if o == a {
			return true
		}
	}
	return false
}

func interfaceAddrs() []netip.Addr {
	addrs, _ := net.InterfaceAddrs()
	var out []netip.Addr
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			out = append(out, p.Addr().Unmap())
		}
	}
	return out
}

// special are ranges besides those netip classifies that are not public
// unicast: "this network", carrier-grade NAT (RFC 6598), IETF protocol
// assignments, benchmarking, reserved (with broadcast), deprecated IPv6
// site-local.
var special = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("fec0::/10"),
}

// nat64 is the well-known NAT64 prefix: its addresses carry an IPv4
// address in their last 32 bits, which is what gets reached.
var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// Blocked reports whether a is not a public unicast address: loopback,
// private (RFC 1918, fc00::/7), link-local (169.254.0.0/16 with cloud
// metadata, fe80::/10), unspecified (0.0.0.0 reaches loopback), multicast,
// or one of the special ranges. IPv4-mapped and NAT64 addresses are judged
// by the IPv4 address they carry.
func Blocked(a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	if nat64.Contains(a) {
		b := a.As16()
		return Blocked(netip.AddrFrom4([4]byte(b[12:])))
	}
	if !a.IsValid() || a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() ||
		a.IsLinkLocalMulticast() || a.IsInterfaceLocalMulticast() || a.IsMulticast() || a.IsUnspecified() {
		return true
	}
	for _, p := range special {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
