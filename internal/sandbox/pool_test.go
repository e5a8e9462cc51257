package sandbox

import (
	"context"
	"log/slog"
	"testing"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/network"
	"github.com/chaserhq/chaser/internal/runtime"
)

// TestPoolSlots checks how pool entries become slots: one per tier whose
// sessions run on the entry's runtime, with the tier's default resources
// and network mode (the entry's, else the tier's egress, else the
// server's); entries of a runtime not enabled, of network internet on a
// server without egress, or of size 0 make none; equal keys merge, keeping
// the larger size.
func TestPoolSlots(t *testing.T) {
	free, paid := DefaultTiers[api.TierFree], DefaultTiers[api.TierPaid]
	runscFree := map[string]TierLimits{api.TierFree: free, api.TierPaid: paid}
	f := runscFree[api.TierFree]
	f.Runtime = "runsc"
	runscFree[api.TierFree] = f
	for _, tc := range []struct {
		name   string
		egress string // the server's (--egress); "" is none
		net    Networker
		tiers  map[string]TierLimits
		pools  []PoolSpec
		want   []poolSlot
	}{
		{"per tier", "", nil, nil, []PoolSpec{{Size: 2}}, []poolSlot{
			{key: poolKey{"host", "runc", free.Defaults, "none", ""}, size: 2},
			{key: poolKey{"host", "runc", paid.Defaults, "none", ""}, size: 2},
		}},
		{"merged", "", nil, nil, []PoolSpec{{Size: 2}, {Image: "host", Runtime: "runc", Network: "none", Size: 3}}, []poolSlot{
			{key: poolKey{"host", "runc", free.Defaults, "none", ""}, size: 3},
			{key: poolKey{"host", "runc", paid.Defaults, "none", ""}, size: 3},
		}},
		{"tier on another runtime", "", nil, runscFree, []PoolSpec{{Size: 1}}, []poolSlot{
			{key: poolKey{"host", "runc", paid.Defaults, "none", ""}, size: 1},
		}},
		{"runtime not enabled", "", nil, nil, []PoolSpec{{Runtime: "runsc", Size: 1}}, nil},
		{"internet without egress", "", nil, nil, []PoolSpec{{Network: "internet", Size: 1}}, nil},
		{"internet", "", fakeNet{}, nil, []PoolSpec{{Network: "internet", Size: 1}}, []poolSlot{
			{key: poolKey{"host", "runc", free.Defaults, "internet", "[]"}, size: 1},
			{key: poolKey{"host", "runc", paid.Defaults, "internet", "[]"}, size: 1},
		}},
		{"the server's egress", "internet", fakeNet{}, nil, []PoolSpec{{Size: 2}, {Network: "none", Size: 1}}, []poolSlot{
			{key: poolKey{"host", "runc", free.Defaults, "internet", "[]"}, size: 2},
			{key: poolKey{"host", "runc", paid.Defaults, "internet", "[]"}, size: 2},
			{key: poolKey{"host", "runc", free.Defaults, "none", ""}, size: 1},
			{key: poolKey{"host", "runc", paid.Defaults, "none", ""}, size: 1},
		}},
		{"disabled", "", nil, nil, []PoolSpec{{Size: 0}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := New(Config{Log: slog.New(slog.DiscardHandler), Tiers: tc.tiers, Pools: tc.pools, Egress: tc.egress, Network: tc.net,
				Runtimes: map[string]runtime.Runtime{"runc": nil}, DefaultRuntime: "runc"})
			if len(s.pool.slots) != len(tc.want) {
				t.Fatalf("slots = %d, want %d", len(s.pool.slots), len(tc.want))
			}
			for i, sl := range s.pool.slots {
				if sl.key != tc.want[i].key || sl.size != tc.want[i].size || (sl.pol != nil) != (sl.key.Network == "internet") {
					t.Errorf("slot %d = %+v size %d, want %+v size %d", i, sl.key, sl.size, tc.want[i].key, tc.want[i].size)
				}
			}
		})
	}
}

// fakeNet is a Networker that sets nothing up: TestPoolSlots only needs
// one to be configured.
type fakeNet struct{}

func (fakeNet) Setup(context.Context, string, network.Policy) (network.Attachment, error) {
	return network.Attachment{}, nil
}
func (fakeNet) Release(string) error                    { return nil }
func (fakeNet) Recover(map[string]network.Policy) error { return nil }
