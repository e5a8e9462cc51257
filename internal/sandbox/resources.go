package sandbox

import (
	"fmt"
	"math"
	"net/netip"
	"strconv"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/errdefs"
	"github.com/chaserhq/chaser/internal/runtime"
	"github.com/chaserhq/chaser/internal/store"
)

// Resources are what one sandbox may use (MiB for memory and disk). In a
// request or a workspace a zero field was not asked for.
type Resources = store.Resources

// MinResources are the least a sandbox starts with: its agent needs a few
// MiB and threads, and CFS quotas go down to a hundredth of a core. Less
// is malformed (400), not a tier matter.
var MinResources = Resources{MilliCPUs: 10, MemoryMB: 32, DiskMB: 16, Pids: 16}

// Asked checks a resource request and returns it as Resources, zero where
// nothing was asked. A value below MinResources (zero and negative ones
// included) is ErrInvalidArgument.
func Asked(r *api.ResourceRequest) (Resources, error) {
	var out Resources
	if r == nil {
		return out, nil
	}
	if r.CPU != nil {
		c := *r.CPU
		if math.IsNaN(c) || c*1000 < float64(MinResources.MilliCPUs) {
			return out, errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf(
				"resources: cpu %s: want a number of cores, at least %s (e.g. 0.5 or 2)", cores(c), cores(float64(MinResources.MilliCPUs)/1000)))
		}
		// Beyond any tier's maximum anyway; kept clear of int64 overflow.
		out.MilliCPUs = int64(math.Round(min(c, 1<<40) * 1000))
	}
	for _, f := range []struct {
		name string
		v    *int64
		min  int64
		dst  *int64
	}{
		{"memory_mb", r.MemoryMB, MinResources.MemoryMB, &out.MemoryMB},
		{"disk_mb", r.DiskMB, MinResources.DiskMB, &out.DiskMB},
		{"pids", r.Pids, MinResources.Pids, &out.Pids},
	} {
		if f.v == nil {
			continue
		}
		if *f.v < f.min {
			return out, errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf(
				"resources: %s %d: want a whole number of at least %d", f.name, *f.v, f.min))
		}
		*f.dst = *f.v
	}
	return out, nil
}

// checkNetwork checks the form of a session's network request:
// ErrInvalidArgument for an unknown mode or a malformed CIDR.
func checkNetwork(n *api.Network) error {
	if n == nil {
		return nil
	}
	for _, c := range append(append([]string(nil), n.Allow...), n.Deny...) {
		if _, err := netip.ParsePrefix(c); err != nil {
			return errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("network: %q is not a CIDR such as 10.1.0.0/16", c))
		}
	}
	switch n.Mode {
	case "", api.NetworkNone, api.NetworkInternet:
	default:
		return errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("network mode %q: use none or internet", n.Mode))
	}
	return nil
}

// cores formats a number of cores.
func cores(c float64) string { return strconv.FormatFloat(c, 'f', -1, 64) }

// Resolve fills what asked leaves out (zero) from the tier's defaults and
// checks the result against the tier's maximums: ErrPermissionDenied
// naming the limit ("memory_mb 4096 is over the free tier's maximum of
// 512") when asked is beyond one. name names the tier in that message.
func (t TierLimits) Resolve(name string, asked Resources) (Resources, error) {
	out := asked
	for _, f := range t.fields(&out) {
		if *f.v == 0 {
			*f.v = f.def
		}
		if f.max > 0 && *f.v > f.max {
			return Resources{}, errdefs.New(errdefs.ErrPermissionDenied, fmt.Sprintf(
				"%s %s is over the %s tier's maximum of %s", f.name, f.format(*f.v), name, f.format(f.max)))
		}
	}
	return out, nil
}

// resourceField is one resource of r with the tier's default and maximum.
type resourceField struct {
	name     string
	v        *int64
	def, max int64
	format   func(int64) string
}

func (t TierLimits) fields(r *Resources) []resourceField {
	count := func(n int64) string { return strconv.FormatInt(n, 10) }
	return []resourceField{
		{"cpu", &r.MilliCPUs, t.Defaults.MilliCPUs, t.Max.MilliCPUs, func(m int64) string { return cores(float64(m) / 1000) }},
		{"memory_mb", &r.MemoryMB, t.Defaults.MemoryMB, t.Max.MemoryMB, count},
		{"disk_mb", &r.DiskMB, t.Defaults.DiskMB, t.Max.DiskMB, count},
		{"pids", &r.Pids, t.Defaults.Pids, t.Max.Pids, count},
	}
}

// limits are the cgroup limits of resources r. The disk is not the
// runtime's: the service gives the sandbox a writable layer of r.DiskMB
// (mountDisk) and hands the runtime its directory.
func limits(r Resources) runtime.Limits {
	return runtime.Limits{MilliCPUs: r.MilliCPUs, MemoryBytes: r.MemoryMB << 20, Pids: r.Pids, DiskBytes: r.DiskMB << 20}
}

// resourcesAPI shows a session's resources; nil for sessions recorded
// before resources were.
func resourcesAPI(r Resources) *api.Resources {
	if r == (Resources{}) {
		return nil
	}
	return &api.Resources{CPU: float64(r.MilliCPUs) / 1000, MemoryMB: r.MemoryMB, DiskMB: r.DiskMB, Pids: r.Pids}
}

// requestAPI shows the resources a workspace was created with: only those
// asked for.
func requestAPI(r Resources) *api.ResourceRequest {
	if r == (Resources{}) {
		return nil
	}
	out := &api.ResourceRequest{}
	if r.MilliCPUs > 0 {
		c := float64(r.MilliCPUs) / 1000
		out.CPU = &c
	}
	for _, f := range []struct {
		v   int64
		dst **int64
	}{{r.MemoryMB, &out.MemoryMB}, {r.DiskMB, &out.DiskMB}, {r.Pids, &out.Pids}} {
		if f.v > 0 {
			v := f.v
			*f.dst = &v
		}
	}
	return out
}
