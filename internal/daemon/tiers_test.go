package daemon

import (
	"strings"
	"testing"
	"time"

	"github.com/chaserhq/chaser/internal/sandbox"
)

// TestOverrideTiers: flags win over the tiers the config file made;
// --disk-size sets every tier's default disk in whole MiB and raises a
// maximum below it, leaving a larger one alone.
func TestOverrideTiers(t *testing.T) {
	tiers := map[string]sandbox.TierLimits{
		"free": {IdleTimeout: time.Minute, Defaults: sandbox.Resources{DiskMB: 100}, Max: sandbox.Resources{DiskMB: 200}},
		"paid": {IdleTimeout: time.Hour, Defaults: sandbox.Resources{DiskMB: 1000, MemoryMB: 64}, Max: sandbox.Resources{DiskMB: 9000}},
	}
	overrideTiers(tiers, Config{DiskSize: 4<<30 + 1, IdleTimeout: -1})
	if f := tiers["free"]; f.Defaults.DiskMB != 4097 || f.Max.DiskMB != 4097 || f.IdleTimeout != 0 {
		t.Errorf("free = %+v; want default and max disk 4097 MiB, idle timeout off", f)
	}
	if p := tiers["paid"]; p.Defaults.DiskMB != 4097 || p.Max.DiskMB != 9000 || p.Defaults.MemoryMB != 64 {
		t.Errorf("paid = %+v; want default disk 4097 MiB, max 9000, memory kept", p)
	}
	overrideTiers(tiers, Config{})
	if p := tiers["paid"]; p.Defaults.DiskMB != 4097 || p.IdleTimeout != 0 {
		t.Errorf("no flags changed paid: %+v", p)
	}
}

// TestLoopbackTiers: without --userns-remap every tier keeps its egress,
// microvm tiers included (their VMs get a NIC).
func TestLoopbackTiers(t *testing.T) {
	tiers := map[string]sandbox.TierLimits{
		"free": {Runtime: "microvm", Egress: "internet"},
		"paid": {Runtime: "runc", Egress: "internet"},
		"team": {},
	}
	if err := loopbackTiers(tiers, false); err != nil {
		t.Fatal(err)
	}
	if tiers["free"].Egress != "internet" || tiers["team"].Egress != "" || tiers["paid"].Egress != "internet" {
		t.Errorf("egress free %q, team %q, paid %q; want internet, unset, internet", tiers["free"].Egress, tiers["team"].Egress, tiers["paid"].Egress)
	}
}

// TestLoopbackTiersRemap: under --userns-remap every tier has mode none,
// and one naming egress internet stops the server.
func TestLoopbackTiersRemap(t *testing.T) {
	tiers := map[string]sandbox.TierLimits{"free": {}, "paid": {Runtime: "runc"}}
	if err := loopbackTiers(tiers, true); err != nil || tiers["free"].Egress != "none" || tiers["paid"].Egress != "none" {
		t.Errorf("remap: %v, egress free %q paid %q; want none, none", err, tiers["free"].Egress, tiers["paid"].Egress)
	}
	tiers = map[string]sandbox.TierLimits{"paid": {Egress: "internet"}}
	if err := loopbackTiers(tiers, true); err == nil || !strings.Contains(err.Error(), "tier paid: egress internet with --userns-remap") {
		t.Errorf("remap with a tier of egress internet: %v; want a startup error naming it", err)
	}
}
