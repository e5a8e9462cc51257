//go:build linux

package vm

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/chaserhq/chaser/internal/runtime"
)

// TestNetworkFiles: mode internet gives the guest its address, gateway
// and a resolv.conf naming the forwarders; mode none a resolv.conf naming
// none and no chaser/net (so /init leaves eth0 alone: there is none).
func TestNetworkFiles(t *testing.T) {
	gn := guestNet{addr: netip.MustParsePrefix("100.64.0.6/30"), gw: netip.MustParseAddr("100.64.0.5")}
	files := map[string]string{}
	for _, f := range networkFiles(&runtime.Network{NSPath: "/x", Nameservers: []string{"100.64.0.5"}}, gn) {
		files[f.Name] = string(f.Data)
	}
	if files["chaser/net"] != "100.64.0.6/30 100.64.0.5\n" || files["chaser/resolv.conf"] != "nameserver 100.64.0.5\n" {
		t.Errorf("mode internet: %q", files)
	}
	none := networkFiles(nil, guestNet{})
	if len(none) != 1 || none[0].Name != "chaser/resolv.conf" || strings.Contains(string(none[0].Data), "nameserver") {
		t.Errorf("mode none: %+v", none)
	}
	if c := clockFile(time.Unix(1700000000, 0)); c.Name != "chaser/time" || string(c.Data) != "1700000000\n" {
		t.Errorf("clock: %+v", c)
	}
	if got := strings.Join(nicArgs(3), " "); got != "-netdev tap,id=net0,fd=3 -device virtio-net-device,netdev=net0" {
		t.Errorf("nicArgs = %s", got)
	}
}
