package cli

import (
	"fmt"
	"strconv"

	"github.com/spf13/pflag"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/daemon"
	"github.com/chaserhq/chaser/internal/errdefs"
)

// resourceFlags are the --cpu, --memory, --disk and --pids flags of
// commands that make sandboxes. Only the flags given are asked for: the
// server fills in the tier's defaults.
type resourceFlags struct {
	flags        *pflag.FlagSet
	cpu          float64
	memory, disk string
	pids         int64
}

func addResourceFlags(f *pflag.FlagSet) *resourceFlags {
	r := &resourceFlags{flags: f}
	f.Float64Var(&r.cpu, "cpu", 0, "CPU cores, e.g. 0.5 or 2 (default: the tier's)")
	f.StringVar(&r.memory, "memory", "", "memory, e.g. 512M or 2G; a bare number is MiB (default: the tier's)")
	f.StringVar(&r.disk, "disk", "", "size of the disk (the writable layer, its quota), e.g. 1G (default: the tier's)")
	f.Int64Var(&r.pids, "pids", 0, "most processes and threads (default: the tier's)")
	return r
}

// request returns the resources the flags ask for; nil when none.
func (r *resourceFlags) request() (*api.ResourceRequest, error) {
	var out api.ResourceRequest
	if r.flags.Changed("cpu") {
		out.CPU = &r.cpu
	}
	if r.flags.Changed("pids") {
		out.Pids = &r.pids
	}
	for _, s := range []struct {
		flag, v string
		dst     **int64
	}{{"memory", r.memory, &out.MemoryMB}, {"disk", r.disk, &out.DiskMB}} {
		if !r.flags.Changed(s.flag) {
			continue
		}
		mb, err := parseMiB(s.v)
		if err != nil {
			return nil, errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("--%s %s", s.flag, err.Error()))
		}
		*s.dst = &mb
	}
	if out.Empty() {
		return nil, nil
	}
	return &out, nil
}

// parseMiB parses a size as whole MiB: "512M", "2G", "1.5GiB"; a bare
// number is MiB.
func parseMiB(s string) (int64, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, nil // the server says what is too small
	}
	b, err := daemon.ParseSize(s)
	if err != nil {
		return 0, err
	}
	if b < 1<<20 {
		return 0, fmt.Errorf("%q: want at least 1M (sizes are whole MiB)", s)
	}
	return int64(b) >> 20, nil
}
