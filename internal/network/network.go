// Package network gives sandboxes egress to the internet under a policy:
// each sandbox of mode internet gets its own network namespace, a veth pair
// with a /30 from the server's address pool, a default route through the
// host, a DNS forwarder on its gateway address, and NAT. One nftables table
// owned by the server (keyed by its data dir) blocks, whatever the policy,
// the host's own addresses (DNS to the sandbox's own gateway excepted),
// other sandboxes, link-local (169.254.0.0/16, so the metadata address),
// multicast and broadcast, and by default the private ranges, which the
// operator may open per tier (Policy.Allow). A startup sweep removes what
// a crash left behind. docs/network.md describes the design.
package network

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/chaserhq/chaser/internal/errdefs"
)

// Modes of a sandbox's network.
const (
	ModeNone     = "none"     // loopback only
	ModeInternet = "internet" // egress through the host with NAT
)

// Private are the ranges a sandbox never reaches unless the operator
// allows them (a tier's allow list).
var Private = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("fc00::/7"),
}

// Blocked are the ranges a sandbox never reaches, whatever the policy:
// "this network", loopback, link-local (169.254.169.254, the metadata
// address of clouds, lies in it), multicast and the reserved range up to
// broadcast. The pool's own subnet (other sandboxes) and the host's
// addresses are blocked besides.
var Blocked = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("224.0.0.0/4"),
	netip.MustParsePrefix("240.0.0.0/4"),
}

// Policy is the egress policy of one sandbox of mode internet.
type Policy struct {
	// Allow opens destinations the defaults block (private ranges); the
	// operator's tier allow list joined with the session's own.
	Allow []netip.Prefix
	// Deny blocks more destinations (the session's deny list). Allow
	// wins over Deny, so that deny 0.0.0.0/0 with an allow list is an
	// allow-only policy.
	Deny []netip.Prefix
}

// Attachment is what a sandbox of mode internet runs with.
type Attachment struct {
	// NSPath is the network namespace the sandbox joins (a bind mount of
	// it, owned by the Manager).
	NSPath string
	// Gateway is the host side of its veth, where its DNS forwarder
	// listens; Addr is the sandbox's own address.
	Gateway, Addr netip.Addr
	// Nameservers go into the sandbox's resolv.conf.
	Nameservers []netip.Addr
}

// ParseCIDRs parses a list of CIDRs: ErrInvalidArgument naming the first
// that is not one. what names the list in the message.
func ParseCIDRs(what string, list []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	for _, c := range list {
		p, err := netip.ParsePrefix(strings.TrimSpace(c))
		if err != nil {
			return nil, errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("%s: %q is not a CIDR such as 10.1.0.0/16", what, c))
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// CheckAllow checks a session's allow list against the operator's (a
// tier's allow list, tier naming it): a CIDR that reaches into a range
// blocked always is refused, and so is one that reaches into a private
// range without lying inside an operator-allowed CIDR. Errors are
// ErrPermissionDenied naming the CIDR and the rule.
func CheckAllow(tier string, operator, asked []netip.Prefix) error {
	for _, p := range asked {
		for _, b := range Blocked {
			if p.Overlaps(b) {
				return errdefs.New(errdefs.ErrPermissionDenied, fmt.Sprintf(
					"network allow %s: it reaches %s, which sandboxes never reach (link-local, loopback, multicast)", p, b))
			}
		}
		if inside(p, operator) {
			continue
		}
		for _, r := range Private {
			if p.Overlaps(r) {
				return errdefs.New(errdefs.ErrPermissionDenied, fmt.Sprintf(
					"network allow %s: it reaches the private range %s, which the %s tier does not allow (the operator's tiers.%s.allow: %s)",
					p, r, tier, tier, show(operator)))
			}
		}
	}
	return nil
}

func show(list []netip.Prefix) string {
	if len(list) == 0 {
		return "none"
	}
	s := make([]string, len(list))
	for i, p := range list {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}

// inside tells whether p lies within one of list.
func inside(p netip.Prefix, list []netip.Prefix) bool {
	for _, q := range list {
		if q.Bits() <= p.Bits() && q.Contains(p.Addr()) {
			return true
		}
	}
	return false
}

// Key is the short name of a server's network state, from its data dir:
// it names its nftables table, prefixes its interfaces and picks its
// default subnet, so that servers on one machine never touch each
// other's.
func Key(dataDir string) string {
	sum := sha256.Sum256([]byte(dataDir))
	return hex.EncodeToString(sum[:])[:5]
}

// IfPrefix is the prefix of every host-side interface of a server.
func IfPrefix(key string) string { return "ch" + key }

// ifName names the host side of slot i's veth: ch + key (5) + slot (4 hex):
// 11 characters, within IFNAMSIZ.
func ifName(key string, slot int) string { return fmt.Sprintf("%s%04x", IfPrefix(key), slot) }

// slotOf parses the slot from a host interface name, or -1.
func slotOf(key, name string) int {
	rest, ok := strings.CutPrefix(name, IfPrefix(key))
	if !ok || len(rest) != 4 {
		return -1
	}
	var n int
	if _, err := fmt.Sscanf(rest, "%04x", &n); err != nil {
		return -1
	}
	return n
}

// TableName names a server's nftables table.
func TableName(key string) string { return "chaser-" + key }

// pool hands out /30 slots of a subnet: slot i is the i-th /30; its first
// address is the gateway (the host side), its second the sandbox's. Slot
// 0 is never used (its network address is the subnet's).
type pool struct {
	subnet netip.Prefix
	used   map[int]string // slot → sandbox id
}

func newPool(subnet netip.Prefix) *pool {
	return &pool{subnet: subnet.Masked(), used: map[int]string{}}
}

// size is how many slots the subnet has.
func (p *pool) size() int { return 1 << (32 - p.subnet.Bits() - 2) }

// take reserves a free slot for id: ErrUnavailable when none is free.
func (p *pool) take(id string) (int, error) {
	for i := 1; i < p.size() && i <= 0xffff; i++ {
		if _, ok := p.used[i]; !ok {
			p.used[i] = id
			return i, nil
		}
	}
	return 0, errdefs.New(errdefs.ErrUnavailable, fmt.Sprintf(
		"the sandbox address pool %s is exhausted (%d sandboxes with egress); delete one or widen network.subnet", p.subnet, len(p.used)))
}

// addrs returns slot i's gateway and sandbox addresses.
func (p *pool) addrs(i int) (gw, addr netip.Addr) {
	base := p.subnet.Addr().As4()
	n := uint32(base[0])<<24 | uint32(base[1])<<16 | uint32(base[2])<<8 | uint32(base[3])
	n += uint32(i) * 4
	a := func(v uint32) netip.Addr {
		return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
	}
	return a(n + 1), a(n + 2)
}

// slotFor returns id's slot, or -1.
func (p *pool) slotFor(id string) int {
	for i, x := range p.used {
		if x == id {
			return i
		}
	}
	return -1
}

// defaultSubnets are the candidates for a server's subnet when the config
// file sets none: /16s inside 100.64.0.0/10 (shared address space, which
// home and office networks do not use), starting at one picked by the key
// so that servers on one machine pick different ones.
func defaultSubnets(key string) []netip.Prefix {
	var start int
	fmt.Sscanf(key[:2], "%02x", &start)
	out := make([]netip.Prefix, 0, 64)
	for i := range 64 {
		n := 64 + (start+i)%64
		out = append(out, netip.PrefixFrom(netip.AddrFrom4([4]byte{100, byte(n), 0, 0}), 16))
	}
	return out
}

// overlapsAny tells whether p overlaps one of routes.
func overlapsAny(p netip.Prefix, routes []netip.Prefix) (netip.Prefix, bool) {
	i := slices.IndexFunc(routes, func(r netip.Prefix) bool { return r.Bits() > 0 && r.Overlaps(p) })
	if i < 0 {
		return netip.Prefix{}, false
	}
	return routes[i], true
}
