package bench

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/client"
	"github.com/chaserhq/chaser/internal/errdefs"
)

// BenchmarkParallelCreate sends waves of parallel creates: 20 on one paid
// account (its tier's limit) and 50 over five paid accounts, against a
// wave of 20 bare `runc run`s of the same rootfs and config. Each wave
// reports p50/p99 of the answers and how many were 201, 429 and anything
// else (which must stay 0). Run it with -benchtime 3x.
func BenchmarkParallelCreate(b *testing.B) {
	s, admin := server(b)
	ctx := context.Background()
	var n int
	accounts := func(k int) []*client.Client {
		var cs []*client.Client
		for range k {
			n++
			acct, err := admin.CreateAccount(ctx, api.CreateAccountRequest{Name: fmt.Sprintf("par%d", n), Tier: api.TierPaid})
			if err != nil {
				b.Fatal(err)
			}
			cs = append(cs, ownClient(s.URL, acct.APIKey))
		}
		return cs
	}
	for _, tc := range []struct {
		name           string
		creates, accts int
	}{{"chaser-20x1acct", 20, 1}, {"chaser-50x5accts", 50, 5}} {
		b.Run(tc.name, func(b *testing.B) {
			cs := accounts(tc.accts)
			var lat []time.Duration
			var created, refused, failed int
			for range b.N {
				var mu sync.Mutex
				var wg sync.WaitGroup
				var ids []struct {
					c  *client.Client
					id string
				}
				for i := range tc.creates {
					wg.Add(1)
					go func() {
						defer wg.Done()
						c := cs[i%len(cs)]
						t0 := time.Now()
						sess, err := c.CreateSession(ctx, api.CreateSessionRequest{Type: "sandbox", Ephemeral: true})
						d := time.Since(t0)
						mu.Lock()
						defer mu.Unlock()
						lat = append(lat, d)
						switch {
						case err == nil:
							created++
							ids = append(ids, struct {
								c  *client.Client
								id string
							}{c, sess.ID})
						case errors.Is(err, errdefs.ErrResourceExhausted):
							refused++
						default:
							failed++
							b.Errorf("create: %v", err)
						}
					}()
				}
				wg.Wait()
				b.StopTimer()
				for _, x := range ids {
					if err := x.c.DeleteSession(ctx, x.id); err != nil {
						b.Fatal(err)
					}
				}
				b.StartTimer()
			}
			slices.Sort(lat)
			b.ReportMetric(percentile(lat, 0.5), "p50-ms")
			b.ReportMetric(percentile(lat, 0.99), "p99-ms")
			b.ReportMetric(float64(created)/float64(b.N), "201/wave")
			b.ReportMetric(float64(refused)/float64(b.N), "429/wave")
			b.ReportMetric(float64(failed)/float64(b.N), "other/wave")
		})
	}
	ref, err := admin.CreateSession(ctx, api.CreateSessionRequest{Type: "sandbox", Ephemeral: true})
	if err != nil {
		b.Fatal(err)
	}
	var bundles []string
	for j := range 20 {
		bundles = append(bundles, bareBundleIn(b, s, ref.ID, fmt.Sprintf("/chaser-bench/par-%d", j), "/usr/bin/true"))
	}
	b.Run("runc-run-20", func(b *testing.B) {
		var lat []time.Duration
		for i := range b.N {
			var mu sync.Mutex
			var wg sync.WaitGroup
			for j := range 20 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					t0 := time.Now()
					cmd := runc(s.DataDir, "run", "--bundle", bundles[j], fmt.Sprintf("par-%d-%d", i, j))
					out, err := cmd.CombinedOutput()
					d := time.Since(t0)
					if err != nil {
						b.Errorf("runc run: %v %s", err, out)
					}
					mu.Lock()
					lat = append(lat, d)
					mu.Unlock()
				}()
			}
			wg.Wait()
		}
		slices.Sort(lat)
		b.ReportMetric(percentile(lat, 0.5), "p50-ms")
		b.ReportMetric(percentile(lat, 0.99), "p99-ms")
	})
}
