package bench

// The server and the other sandboxes while one sandbox abuses its limits:
// go test ./bench/ -run '^$' -bench Abuse -benchtime 1x

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/client"
	"github.com/chaserhq/chaser/internal/daemon"
	"github.com/chaserhq/chaser/internal/testserver"
)

// abuseWindow is how long each abuse runs while the probes measure, after
// abuseRamp to let it take hold.
const (
	abuseWindow = 6 * time.Second
	abuseRamp   = 1500 * time.Millisecond
)

// abuses are what the abusing sandbox runs, each in a fresh sandbox of the
// paid tier: its memory (2 GiB) and pids (1024) limits, and cpu CPUs (0:
// the tier's default, 2, every core of the 2-core test machine).
var abuses = []struct {
	name, command string
	cpu           float64
}{
	{"idle", "sleep 3600", 0},
	// The classic bash fork bomb: the pids limit contains it.
	{"fork-bomb", bomb, 0},
	{"fork-bomb-1cpu", bomb, 1},
	// Allocation past the memory limit, again and again: under runc the
	// OOM killer takes the hog and the loop starts another; under runsc
	// the OOM kill ends the whole sandbox (and the session).
	{"memory-hog", "while :; do python3 -c 'a = []\nwhile True: a.append(bytearray(64 << 20))'; done", 0},
	// A busy loop per CPU the sandbox sees, twice over: on every core.
	{"cpu-spin", spin, 0},
	// The same with a quota of one CPU: a core stays free for the rest.
	{"cpu-spin-1cpu", spin, 1},
}

const bomb = "b() { b | b & }; b"

const spin = "for i in $(seq $((2 * $(nproc)))); do (while :; do :; done) & done; wait"

// BenchmarkAbuse runs, under runc and under runsc, a fork bomb, a memory
// hog and a busy loop on every core in one sandbox, and meanwhile measures
// the server's /healthz (every 20 ms) and an exec round trip of `true` in
// another sandbox (back to back): p50 and p99 of each, "idle" being the
// baseline. The aim (issue 14) is a p99 under 100 ms.
func BenchmarkAbuse(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("skipping: benchmarks run real sandboxes and need root")
	}
	for _, rt := range []string{"runc", "runsc"} {
		s, err := testserver.Start("", "--runtime", rt)
		if err != nil {
			b.Fatal(err)
		}
		cgroup := daemon.CgroupParent(s.DataDir)
		if rt == "runsc" {
			cgroup += "-runsc"
		}
		admin := client.New(s.URL, s.AdminKey)
		acct, err := admin.CreateAccount(b.Context(), api.CreateAccountRequest{Name: "bench-abuse", Tier: api.TierPaid})
		if err != nil {
			b.Fatal(err)
		}
		c := client.New(s.URL, acct.APIKey)
		newSession := func(b *testing.B, cpu float64) string {
			req := api.CreateSessionRequest{Type: "sandbox", Ephemeral: true}
			if cpu > 0 {
				req.Resources = &api.ResourceRequest{CPU: &cpu}
			}
			sess, err := c.CreateSession(b.Context(), req)
			if err != nil {
				b.Fatal(err)
			}
			return sess.ID
		}
		probe := newSession(b, 0)
		for _, a := range abuses {
			b.Run(rt+"/"+a.name, func(b *testing.B) {
				for range b.N {
					abuser := newSession(b, a.cpu)
					if _, err := c.StartBackground(b.Context(), abuser, api.ExecRequest{Command: a.command}); err != nil {
						b.Fatal(err)
					}
					time.Sleep(abuseRamp)
					health, execs := measure(b, s.URL, c, probe)
					// What the abuser holds at the end: its tasks (the
					// fork bomb's stop at the pids limit), and whether
					// its session ended (an OOM under runsc).
					if v, err := os.ReadFile(filepath.Join("/sys/fs/cgroup/pids", cgroup, abuser, "pids.current")); err == nil {
						n, _ := strconv.Atoi(strings.TrimSpace(string(v)))
						b.ReportMetric(float64(n), "abuser-pids")
					}
					ended := 0.0
					if sess, err := c.GetSession(b.Context(), abuser); err == nil && sess.Status != api.StatusRunning {
						ended = 1
					}
					b.ReportMetric(ended, "abuser-ended")
					// The abuser may be gone already (an OOM under runsc).
					dctx, cancel := context.WithTimeout(context.Background(), time.Minute)
					_ = c.DeleteSession(dctx, abuser)
					cancel()
					reportMS(b, "healthz", health)
					reportMS(b, "exec", execs)
				}
			})
		}
		c.DeleteSession(context.Background(), probe)
		s.Stop()
		os.RemoveAll(s.DataDir)
	}
}

// measure samples, for abuseWindow, GET /healthz every 20 ms and exec
// round trips of `true` in session probe back to back, and returns both
// latencies. A failed call fails the benchmark.
func measure(b *testing.B, url string, c *client.Client, probe string) (health, execs []time.Duration) {
	ctx, cancel := context.WithTimeout(b.Context(), abuseWindow)
	defer cancel()
	anon := client.New(url, "")
	var wg sync.WaitGroup
	var errMu sync.Mutex
	var firstErr error
	fail := func(err error) {
		errMu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		errMu.Unlock()
	}
	wg.Add(2)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			t0 := time.Now()
			if err := anon.Health(context.WithoutCancel(ctx)); err != nil {
				fail(err)
				return
			}
			health = append(health, time.Since(t0))
		}
	}()
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			t0 := time.Now()
			res, err := c.Exec(context.WithoutCancel(ctx), probe, api.ExecRequest{Command: "true"})
			if err != nil || res.ExitCode != 0 {
				fail(err)
				return
			}
			execs = append(execs, time.Since(t0))
		}
	}()
	wg.Wait()
	if firstErr != nil {
		b.Fatal(firstErr)
	}
	return health, execs
}

// reportMS adds p50 and p99 (ms) of samples as metrics named after what.
func reportMS(b *testing.B, what string, samples []time.Duration) {
	if len(samples) == 0 {
		b.Fatalf("%s: no samples", what)
	}
	slices.Sort(samples)
	pct := func(p float64) float64 {
		return float64(samples[int(p*float64(len(samples)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), what+"-p50-ms")
	b.ReportMetric(pct(0.99), what+"-p99-ms")
	b.ReportMetric(float64(len(samples)), what+"-n")
}
