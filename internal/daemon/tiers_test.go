package daemon

import (
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
