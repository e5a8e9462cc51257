package daemon

import (
	"slices"
	"testing"

	"github.com/chaserhq/chaser/internal/config"
	"github.com/chaserhq/chaser/internal/sandbox"
)

// TestPools checks the precedence of --pool-size over the config file's
// entry for the default pool: set, it replaces it; unset, the file's entry
// wins and the default applies only without one. The default pool's
// network is the tiers' mode ("" in its spec): an entry of network
// --egress, or of none given, is it; one of another mode is not.
func TestPools(t *testing.T) {
	size := func(n int) *int { return &n }
	file := &config.File{Pool: []config.Pool{
		{Image: "host", Runtime: "runc", Network: "none", Size: size(5)},
		{Image: "alpine", Size: size(1)},
	}}
	cfg := Config{DefaultImage: "host", Runtime: "runc", PoolSize: 2, Egress: "none"}
	def := sandbox.PoolSpec{Image: "host", Runtime: "runc", Size: 2}
	for _, tc := range []struct {
		name   string
		egress string
		file   *config.File
		set    bool
		want   []sandbox.PoolSpec
	}{
		{"no file", "none", nil, false, []sandbox.PoolSpec{def}},
		{"file wins over the default", "none", file, false, []sandbox.PoolSpec{{Image: "host", Runtime: "runc", Network: "none", Size: 5}, {Image: "alpine", Size: 1}}},
		{"flag wins over the file", "none", file, true, []sandbox.PoolSpec{{Image: "alpine", Size: 1}, def}},
		{"another network is another pool", "internet", file, true, []sandbox.PoolSpec{{Image: "host", Runtime: "runc", Network: "none", Size: 5}, {Image: "alpine", Size: 1}, def}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := cfg
			c.PoolSizeSet, c.Egress = tc.set, tc.egress
			if got := pools(tc.file, c); !slices.Equal(got, tc.want) {
				t.Errorf("pools = %+v, want %+v", got, tc.want)
			}
		})
	}
}
