package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/client"
	"github.com/chaserhq/chaser/internal/errdefs"
	"github.com/chaserhq/chaser/internal/testserver"
)

// BenchmarkParallelCreate sends waves of parallel creates: 20 on one paid
// account (its tier's limit) and 50 over five paid accounts, against a
// wave of 20 bare `runc run`s of the same rootfs and config; then the same
// two waves on a server with the warm pool (--pool-size 4), and 50 over
// five accounts on a server whose host admits 30 sandboxes (config
// host.max_sandboxes, the pool included), where 20 must be refused. Each
// wave reports p50/p99 of all answers and how many were 201, 429 with a
// Retry-After, and anything else — a 5xx, a 429 without Retry-After —
// which must stay 0 (the benchmark fails otherwise). Run it with
// -benchtime 3x.
func BenchmarkParallelCreate(b *testing.B) {
	s, admin := server(b)
	ctx := context.Background()
	for _, tc := range []struct {
		name           string
		creates, accts int
	}{{"chaser-20x1acct", 20, 1}, {"chaser-50x5accts", 50, 5}} {
		b.Run(tc.name, func(b *testing.B) { parallelWaves(b, s, tc.creates, tc.accts) })
	}
	pooled := startArgs(b, "--pool-size", "4")
	for _, tc := range []struct {
		name           string
		creates, accts int
	}{{"pooled-20x1acct", 20, 1}, {"pooled-50x5accts", 50, 5}} {
		b.Run(tc.name, func(b *testing.B) { parallelWaves(b, pooled, tc.creates, tc.accts) })
	}
	cfg := filepath.Join(b.TempDir(), "host.yaml")
	if err := os.WriteFile(cfg, []byte("host: {max_sandboxes: 30}\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	limited := startArgs(b, "--pool-size", "4", "--config", cfg)
	b.Run("host30-50x5accts", func(b *testing.B) { parallelWaves(b, limited, 50, 5) })

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

// startArgs starts a server of the benchmark's own with args, stopped and
// removed at its end.
func startArgs(b *testing.B, args ...string) *testserver.Server {
	b.Helper()
	s, err := testserver.Start("", args...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		s.Stop()
		os.RemoveAll(s.DataDir)
	})
	return s
}

var parallelAccounts int

// parallelWaves runs b.N waves of creates parallel creates, spread over
// accts new paid accounts of s, deleting what each wave made (untimed)
// before the next.
func parallelWaves(b *testing.B, s *testserver.Server, creates, accts int) {
	ctx := context.Background()
	admin := client.New(s.URL, s.AdminKey)
	var cs []*client.Client
	for range accts {
		parallelAccounts++
		acct, err := admin.CreateAccount(ctx, api.CreateAccountRequest{Name: fmt.Sprintf("par%d", parallelAccounts), Tier: api.TierPaid})
		if err != nil {
			b.Fatal(err)
		}
		cs = append(cs, ownClient(s.URL, acct.APIKey))
	}
	type made struct {
		c  *client.Client
		id string
	}
	var lat []time.Duration
	var created, refused, failed int
	for range b.N {
		var mu sync.Mutex
		var wg sync.WaitGroup
		var ids []made
		for i := range creates {
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
					ids = append(ids, made{c, sess.ID})
				case errors.Is(err, errdefs.ErrResourceExhausted) && errdefs.RetryAfter(err) > 0:
					refused++
				default:
					failed++
					b.Errorf("create: %v (Retry-After %v)", err, errdefs.RetryAfter(err))
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
	if failed > 0 { // the cause is in the server's log, which goes with it
		for _, l := range strings.Split(s.Log(), "\n") {
			if strings.Contains(l, "ERROR") || strings.Contains(l, "level=ERROR") || strings.Contains(l, " 500 ") {
				b.Log(l)
			}
		}
	}
	slices.Sort(lat)
	b.ReportMetric(percentile(lat, 0.5), "p50-ms")
	b.ReportMetric(percentile(lat, 0.99), "p99-ms")
	b.ReportMetric(float64(created)/float64(b.N), "201/wave")
	b.ReportMetric(float64(refused)/float64(b.N), "429/wave")
	b.ReportMetric(float64(failed)/float64(b.N), "other/wave")
}
