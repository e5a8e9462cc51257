package bench

import (
	"context"
	"fmt"
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
)

// BenchmarkScale is the scale curve of issue 17: one server, sandboxes of
// paid accounts (20 each, the tier's limit) grown to each level of
// CHASER_BENCH_SCALE (default 20,120,250,500) and kept running; at each
// level it reports
//
//   - create-p50-ms: 10 creates (+ first `true`), one at a time, each
//     deleted before the next, beside the running ones;
//   - exec-p50-ms: 100 execs of `true` spread over the running sandboxes;
//   - host-MB/sandbox: the host's used memory (MemTotal - MemAvailable)
//     over the start, per running sandbox (the machine is shared: noisy);
//   - cgroup-MB/sandbox: the sandboxes' memory cgroups, and server-RSS-MB;
//   - host-threads: the host's threads (/proc/loadavg), loop devices;
//   - runc-run-p50-ms: 10 bare `runc run`s of `true` with a sandbox's
//     rootfs and config, the baseline at the same level.
//
// The server runs with --egress none unless CHASER_BENCH_EGRESS=internet.
// Everything is deleted at the end. Run once:
// `go test ./bench -run '^$' -bench '^BenchmarkScale$' -benchtime 1x -timeout 60m`.
func BenchmarkScale(b *testing.B) {
	var levels []int
	for _, f := range strings.Split(envString("CHASER_BENCH_SCALE", "20,120,250,500"), ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			b.Fatalf("CHASER_BENCH_SCALE: %q is not a count", f)
		}
		levels = append(levels, n)
	}
	egress := envString("CHASER_BENCH_EGRESS", "none")
	s := startArgs(b, "--egress", egress)
	admin := client.New(s.URL, s.AdminKey)
	ctx := context.Background()
	type target struct {
		c  *client.Client
		id string
	}
	var (
		targets []target
		accts   []*client.Client
	)
	defer func() { // everything goes, 8 at a time
		sem := make(chan struct{}, 8)
		var wg sync.WaitGroup
		for _, t := range targets {
			wg.Go(func() {
				sem <- struct{}{}
				defer func() { <-sem }()
				if err := t.c.DeleteSession(context.Background(), t.id); err != nil {
					b.Errorf("delete %s: %v", t.id, err)
				}
			})
		}
		wg.Wait()
	}()
	base := hostUsedMB(b)
	grow := func(n int) {
		var mu sync.Mutex
		var wg sync.WaitGroup
		sem := make(chan struct{}, 4) // the host has 2 cores
		var errs []error
		for i := len(targets); i < n; i++ {
			if i/20 >= len(accts) {
				acct, err := admin.CreateAccount(ctx, api.CreateAccountRequest{Name: fmt.Sprintf("scale%d", len(accts)), Tier: api.TierPaid})
				if err != nil {
					b.Fatal(err)
				}
				accts = append(accts, ownClient(s.URL, acct.APIKey))
			}
			c := accts[i/20]
			wg.Go(func() {
				sem <- struct{}{}
				defer func() { <-sem }()
				sess, err := c.CreateSession(ctx, api.CreateSessionRequest{Type: "sandbox", Ephemeral: true})
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, err)
					return
				}
				targets = append(targets, target{c, sess.ID})
			})
		}
		wg.Wait()
		if len(errs) > 0 {
			b.Fatalf("growing to %d sandboxes: %d creates failed, first: %v", n, len(errs), errs[0])
		}
	}
	// The probe account's creates are the measured ones.
	pa, err := admin.CreateAccount(ctx, api.CreateAccountRequest{Name: "scale-probe", Tier: api.TierPaid})
	if err != nil {
		b.Fatal(err)
	}
	probe := ownClient(s.URL, pa.APIKey)
	ref, err := probe.CreateSession(ctx, api.CreateSessionRequest{Type: "sandbox", Ephemeral: true})
	if err != nil {
		b.Fatal(err)
	}
	defer probe.DeleteSession(context.Background(), ref.ID)
	bundle := bareBundleIn(b, s, ref.ID, "/chaser-bench/scale", "/usr/bin/true")
	runs := 0
	for _, n := range levels {
		b.Run(fmt.Sprintf("sandboxes=%d", n), func(b *testing.B) {
			t0 := time.Now()
			grow(n)
			grew := time.Since(t0)
			var creates, execs, bare []time.Duration
			for range b.N {
				for range 10 {
					runs++
					t0 := time.Now()
					if out, err := runc(s.DataDir, "run", "--bundle", bundle, fmt.Sprintf("scale-%d", runs)).CombinedOutput(); err != nil {
						b.Fatalf("runc run: %v %s", err, out)
					}
					bare = append(bare, time.Since(t0))
				}
				for range 10 {
					t0 := time.Now()
					sess, err := probe.CreateSession(ctx, api.CreateSessionRequest{Type: "sandbox", Ephemeral: true})
					if err != nil {
						b.Fatal(err)
					}
					if res, err := probe.Exec(ctx, sess.ID, api.ExecRequest{Command: "true"}); err != nil || res.ExitCode != 0 {
						b.Fatal(res, err)
					}
					creates = append(creates, time.Since(t0))
					if err := probe.DeleteSession(ctx, sess.ID); err != nil {
						b.Fatal(err)
					}
				}
				for i := range 100 {
					t := targets[(i*7919)%len(targets)]
					t0 := time.Now()
					if res, err := t.c.Exec(ctx, t.id, api.ExecRequest{Command: "true"}); err != nil || res.ExitCode != 0 {
						b.Fatalf("exec in %s: %+v %v", t.id, res, err)
					}
					execs = append(execs, time.Since(t0))
				}
			}
			slices.Sort(creates)
			slices.Sort(execs)
			slices.Sort(bare)
			b.ReportMetric(percentile(bare, 0.5), "runc-run-p50-ms")
			used := hostUsedMB(b)
			var cg int64
			for _, t := range targets {
				cg += cgroupMemory(s.DataDir, t.id)
			}
			b.ReportMetric(percentile(creates, 0.5), "create-p50-ms")
			b.ReportMetric(percentile(execs, 0.5), "exec-p50-ms")
			b.ReportMetric(percentile(execs, 0.99), "exec-p99-ms")
			b.ReportMetric(float64(used-base)/float64(len(targets)), "host-MB/sandbox")
			b.ReportMetric(float64(cg)/float64(len(targets))/(1<<20), "cgroup-MB/sandbox")
			b.ReportMetric(float64(statusKB(b, strconv.Itoa(s.Cmd.Process.Pid), "VmRSS"))/1024, "server-RSS-MB")
			b.ReportMetric(hostThreads(b), "host-threads")
			loops, _ := filepath.Glob("/sys/block/loop*")
			b.ReportMetric(float64(len(loops)), "loop-devices")
			b.ReportMetric(grew.Seconds(), "grow-s")
			b.ReportMetric(loadAvg(b), "load1")
		})
	}
}

func envString(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// hostUsedMB is MemTotal - MemAvailable, in MiB.
func hostUsedMB(b *testing.B) int64 {
	raw, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		b.Fatal(err)
	}
	kb := map[string]int64{}
	for _, l := range strings.Split(string(raw), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			kb[k], _ = strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		}
	}
	return (kb["MemTotal"] - kb["MemAvailable"]) >> 10
}

// cgroupMemory is sandbox id's memory cgroup usage in bytes (cgroup v1,
// runc's parent), 0 when unreadable.
func cgroupMemory(dataDir, id string) int64 {
	for _, parent := range []string{daemon.CgroupParent(dataDir), daemon.CgroupParent(dataDir) + "-runsc"} {
		u, err := os.ReadFile("/sys/fs/cgroup/memory/" + parent + "/" + id + "/memory.usage_in_bytes")
		if err == nil {
			v, _ := strconv.ParseInt(strings.TrimSpace(string(u)), 10, 64)
			return v
		}
	}
	return 0
}

// hostThreads is the number of threads on the host (/proc/loadavg).
func hostThreads(b *testing.B) float64 {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(string(raw))
	_, total, _ := strings.Cut(f[3], "/")
	n, _ := strconv.ParseFloat(total, 64)
	return n
}

func loadAvg(b *testing.B) float64 {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		b.Fatal(err)
	}
	n, _ := strconv.ParseFloat(strings.Fields(string(raw))[0], 64)
	return n
}
