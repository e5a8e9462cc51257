package network

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/chaserhq/chaser/internal/errdefs"
)

func TestPool(t *testing.T) {
	p := newPool(netip.MustParsePrefix("100.96.0.0/28")) // 4 slots, slot 0 unused
	for i, want := range []string{"100.96.0.6", "100.96.0.10", "100.96.0.14"} {
		s, err := p.take("s" + want)
		if err != nil {
			t.Fatal(err)
		}
		gw, addr := p.addrs(s)
		if s != i+1 || addr.String() != want || gw.Next() != addr {
			t.Errorf("slot %d: gw %s addr %s, want slot %d addr %s", s, gw, addr, i+1, want)
		}
	}
	if _, err := p.take("x"); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Errorf("full pool: %v, want ErrUnavailable", err)
	}
	if p.slotFor("s100.96.0.10") != 2 || p.slotFor("nope") != -1 {
		t.Error("slotFor")
	}
}

func TestNames(t *testing.T) {
	k := Key("/var/lib/chaser")
	n := ifName(k, 0x1a2)
	if len(n) > 15 || slotOf(k, n) != 0x1a2 || slotOf(k, "eth0") != -1 || slotOf(Key("/other"), n) != -1 {
		t.Errorf("ifName %q / slotOf", n)
	}
	if Key("/a") == Key("/b") {
		t.Error("keys of two data dirs are equal")
	}
}

func TestCheckAllow(t *testing.T) {
	op := []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}
	for _, c := range []struct {
		cidr string
		ok   bool
	}{
		{"10.1.2.0/24", true},     // inside the operator's
		{"93.184.0.0/16", true},   // public
		{"10.0.0.0/8", false},     // wider than the operator's
		{"192.168.1.0/24", false}, // private, not allowed
		{"169.254.169.254/32", false},
		{"0.0.0.0/0", false}, // reaches everything, blocked ranges too
	} {
		err := CheckAllow("paid", op, []netip.Prefix{netip.MustParsePrefix(c.cidr)})
		if (err == nil) != c.ok || err != nil && !errors.Is(err, errdefs.ErrPermissionDenied) {
			t.Errorf("%s: %v", c.cidr, err)
		}
	}
}
