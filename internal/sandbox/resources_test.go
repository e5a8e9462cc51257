package sandbox

import (
	"errors"
	"strings"
	"testing"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/errdefs"
)

func TestResolveResources(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	n := func(v int64) *int64 { return &v }
	free := DefaultTiers[api.TierFree]
	free.Max.MemoryMB, free.Max.MilliCPUs = 512, 1500
	tests := []struct {
		name string
		req  *api.ResourceRequest
		want Resources
		err  error
		msg  string
	}{
		{name: "none: the defaults", want: free.Defaults},
		{name: "some asked", req: &api.ResourceRequest{CPU: f(0.5), Pids: n(64)},
			want: Resources{MilliCPUs: 500, MemoryMB: free.Defaults.MemoryMB, DiskMB: free.Defaults.DiskMB, Pids: 64}},
		{name: "fractional cpu up to the max", req: &api.ResourceRequest{CPU: f(1.5)},
			want: Resources{MilliCPUs: 1500, MemoryMB: free.Defaults.MemoryMB, DiskMB: free.Defaults.DiskMB, Pids: free.Defaults.Pids}},
		{name: "memory over max", req: &api.ResourceRequest{MemoryMB: n(4096)}, err: errdefs.ErrPermissionDenied,
			msg: "memory_mb 4096 is over the free tier's maximum of 512"},
		{name: "cpu over max", req: &api.ResourceRequest{CPU: f(2)}, err: errdefs.ErrPermissionDenied,
			msg: "cpu 2 is over the free tier's maximum of 1.5"},
		{name: "huge cpu", req: &api.ResourceRequest{CPU: f(1e300)}, err: errdefs.ErrPermissionDenied},
		{name: "zero memory", req: &api.ResourceRequest{MemoryMB: n(0)}, err: errdefs.ErrInvalidArgument, msg: "memory_mb 0"},
		{name: "negative pids", req: &api.ResourceRequest{Pids: n(-1)}, err: errdefs.ErrInvalidArgument, msg: "pids -1"},
		{name: "zero cpu", req: &api.ResourceRequest{CPU: f(0)}, err: errdefs.ErrInvalidArgument, msg: "cpu 0"},
		{name: "negative cpu", req: &api.ResourceRequest{CPU: f(-0.5)}, err: errdefs.ErrInvalidArgument},
		{name: "tiny disk", req: &api.ResourceRequest{DiskMB: n(1)}, err: errdefs.ErrInvalidArgument, msg: "disk_mb 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			asked, err := Asked(tt.req)
			if err == nil {
				var got Resources
				got, err = free.Resolve("free", asked)
				if err == nil && got != tt.want {
					t.Fatalf("got %+v, want %+v", got, tt.want)
				}
			}
			if !errors.Is(err, tt.err) || err != nil && !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("err = %v, want %v containing %q", err, tt.err, tt.msg)
			}
		})
	}
}
