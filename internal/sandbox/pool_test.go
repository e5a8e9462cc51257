package sandbox

import (
	"log/slog"
	"testing"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/runtime"
)

// TestPoolSlots checks how pool entries become slots: one per tier whose
// sessions run on the entry's runtime, with the tier's default resources;
// entries of a runtime not enabled, of network internet, or of size 0 make
// none; equal keys merge, keeping the larger size.
func TestPoolSlots(t *testing.T) {
	free, paid := DefaultTiers[api.TierFree], DefaultTiers[api.TierPaid]
	runscFree := map[string]TierLimits{api.TierFree: free, api.TierPaid: paid}
	f := runscFree[api.TierFree]
	f.Runtime = "runsc"
	runscFree[api.TierFree] = f
	for _, tc := range []struct {
		name  string
		tiers map[string]TierLimits
		pools []PoolSpec
		want  []poolSlot
	}{
		{"per tier", nil, []PoolSpec{{Size: 2}}, []poolSlot{
			{key: poolKey{"host", "runc", free.Defaults}, size: 2},
			{key: poolKey{"host", "runc", paid.Defaults}, size: 2},
		}},
		{"merged", nil, []PoolSpec{{Size: 2}, {Image: "host", Runtime: "runc", Network: "none", Size: 3}}, []poolSlot{
			{key: poolKey{"host", "runc", free.Defaults}, size: 3},
			{key: poolKey{"host", "runc", paid.Defaults}, size: 3},
		}},
		{"tier on another runtime", runscFree, []PoolSpec{{Size: 1}}, []poolSlot{
			{key: poolKey{"host", "runc", paid.Defaults}, size: 1},
		}},
		{"runtime not enabled", nil, []PoolSpec{{Runtime: "runsc", Size: 1}}, nil},
		{"network not served", nil, []PoolSpec{{Network: "internet", Size: 1}}, nil},
		{"disabled", nil, []PoolSpec{{Size: 0}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := New(Config{Log: slog.New(slog.DiscardHandler), Tiers: tc.tiers, Pools: tc.pools,
				Runtimes: map[string]runtime.Runtime{"runc": nil}, DefaultRuntime: "runc"})
			if len(s.pool.slots) != len(tc.want) {
				t.Fatalf("slots = %d, want %d", len(s.pool.slots), len(tc.want))
			}
			for i, sl := range s.pool.slots {
				if sl.key != tc.want[i].key || sl.size != tc.want[i].size {
					t.Errorf("slot %d = %+v size %d, want %+v size %d", i, sl.key, sl.size, tc.want[i].key, tc.want[i].size)
				}
			}
		})
	}
}
