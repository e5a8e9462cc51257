package network

import (
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
)

// TestSetupRelease makes and removes a sandbox network for real: veth,
// namespace, rules; then a crash's leftovers, which Recover removes.
func TestSetupRelease(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (netlink, nftables, namespaces)")
	}
	dir := t.TempDir()
	m, err := New(Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	count := func() (links int, ns int) {
		ls, _ := netlink.LinkList()
		for _, l := range ls {
			if strings.HasPrefix(l.Attrs().Name, IfPrefix(m.key)) {
				links++
			}
		}
		es, _ := os.ReadDir(filepath.Join(dir, "netns"))
		return links, len(es)
	}
	pol := Policy{Allow: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}}
	a, err := m.Setup(t.Context(), "s-one", pol)
	if err != nil {
		t.Fatal(err)
	}
	if !m.Subnet().Contains(a.Addr) || !m.Subnet().Contains(a.Gateway) {
		t.Fatalf("attachment %+v outside %s", a, m.Subnet())
	}
	if l, n := count(); l != 1 || n != 1 {
		t.Fatalf("after setup: %d veths, %d namespaces, want 1 and 1", l, n)
	}
	if err := m.Release("s-one"); err != nil {
		t.Fatal(err)
	}
	if l, n := count(); l != 0 || n != 0 || len(m.pool.used) != 0 {
		t.Fatalf("after release: %d veths, %d namespaces, %d addresses", l, n, len(m.pool.used))
	}
	// A crash: two networks whose server is gone; a new manager on the same
	// data dir keeps the one still running and removes the other.
	if _, err := m.Setup(t.Context(), "s-keep", pol); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Setup(t.Context(), "s-gone", pol); err != nil {
		t.Fatal(err)
	}
	m.lock.Close()
	for _, a := range m.attached {
		a.dns.close()
	}
	m2, err := New(Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	m = m2
	if err := m.Recover(map[string]Policy{"s-keep": pol}); err != nil {
		t.Fatal(err)
	}
	if l, n := count(); l != 1 || n != 1 {
		t.Fatalf("after recover: %d veths, %d namespaces, want 1 and 1", l, n)
	}
	if err := m.Release("s-keep"); err != nil {
		t.Fatal(err)
	}
	if l, n := count(); l != 0 || n != 0 {
		t.Fatalf("after release: %d veths, %d namespaces", l, n)
	}
}

func TestRulesetListed(t *testing.T) {
	if os.Geteuid() != 0 || os.Getenv("CHASER_SHOW_NFT") == "" {
		t.Skip("a debugging aid, not a check: set CHASER_SHOW_NFT=1 (as root) to print a sandbox's ruleset")
	}
	m, err := New(Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := m.Setup(t.Context(), "s-x", Policy{}); err != nil {
		t.Fatal(err)
	}
	defer m.Release("s-x")
	b, _ := execOut("nft", "list", "table", "inet", TableName(m.key))
	t.Log(b)
}

func execOut(name string, args ...string) (string, error) {
	b, err := exec.Command(name, args...).CombinedOutput()
	return string(b), err
}
