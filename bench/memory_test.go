package bench

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/client"
)

// BenchmarkIdleHostMemory is what an idle sandbox costs the host under
// runc and under runsc (gVisor, systrap): the host's used memory
// (MemTotal - MemAvailable, the median of 5 readings) before and after 20
// idle sandboxes of one paid account, per sandbox, beside the sum of
// their memory cgroups. One server per runtime, one after the other. The
// machine may be shared: the host delta is noisy, the cgroup sum is not.
// Each iteration is one sample; the medians are reported. Run it with
// -benchtime 3x.
func BenchmarkIdleHostMemory(b *testing.B) {
	for _, rt := range []string{"runc", "runsc"} {
		b.Run(rt, func(b *testing.B) {
			s := startArgs(b, "--runtime", rt)
			admin := client.New(s.URL, s.AdminKey)
			ctx := context.Background()
			acct, err := admin.CreateAccount(ctx, api.CreateAccountRequest{Name: "idle-" + rt, Tier: api.TierPaid})
			if err != nil {
				b.Fatal(err)
			}
			c := client.New(s.URL, acct.APIKey)
			var host, cgs []float64
			for range b.N {
				before := medianUsedMB(b)
				var ids []string
				for range 20 {
					sess, err := c.CreateSession(ctx, api.CreateSessionRequest{Type: "sandbox", Ephemeral: true})
					if err != nil {
						b.Fatal(err)
					}
					ids = append(ids, sess.ID)
				}
				time.Sleep(3 * time.Second) // let them settle
				after := medianUsedMB(b)
				var cg int64
				for _, id := range ids {
					cg += cgroupMemory(s.DataDir, id)
				}
				host = append(host, float64(after-before)/20)
				cgs = append(cgs, float64(cg)/20/(1<<20))
				for _, id := range ids {
					if err := c.DeleteSession(ctx, id); err != nil {
						b.Fatal(err)
					}
				}
			}
			slices.Sort(host)
			slices.Sort(cgs)
			b.ReportMetric(host[len(host)/2], "host-MB/sandbox")
			b.ReportMetric(cgs[len(cgs)/2], "cgroup-MB/sandbox")
		})
	}
}

// medianUsedMB is the median of 5 readings of the host's used memory,
// half a second apart.
func medianUsedMB(b *testing.B) int64 {
	var v []int64
	for i := range 5 {
		if i > 0 {
			time.Sleep(500 * time.Millisecond)
		}
		v = append(v, hostUsedMB(b))
	}
	slices.Sort(v)
	return v[2]
}
