// Package bench holds Chaser's benchmarks. Each compares Chaser with the bare
// runtime on the same machine in the same run, so ratios mean something on
// a noisy host: run them with `sudo go test ./bench -run '^$' -bench . -benchtime 20x`
// (or bench/run.sh, which prints the ratios).
package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/client"
	"github.com/chaserhq/chaser/internal/daemon"
	"github.com/chaserhq/chaser/internal/runtime/oci"
	"github.com/chaserhq/chaser/internal/testserver"
)

// server starts a server of the benchmark's own with args (startArgs)
// and returns it with an admin client; it skips unless run as root.
func server(b *testing.B, args ...string) (*testserver.Server, *client.Client) {
	b.Helper()
	if os.Geteuid() != 0 {
		b.Skip("skipping: benchmarks run real sandboxes and need root")
	}
	// CHASER_BENCH_SERVER_ARGS adds flags, e.g. "--health-interval 1h"
	// to see what the background health checks cost a benchmark.
	s := startArgs(b, append(args, strings.Fields(os.Getenv("CHASER_BENCH_SERVER_ARGS"))...)...)
	return s, client.New(s.URL, s.AdminKey)
}

func runc(dataDir string, args ...string) *exec.Cmd {
	return exec.Command("runc", append([]string{"--root", filepath.Join(dataDir, "runc")}, args...)...)
}

// bareBundle makes a runc bundle with the same config and rootfs as a
// running Chaser sandbox, but running argv instead of the agent. Its
// config has the sandbox's seccomp profile: a Chaser sandbox's config
// lacks it once the server has read the compiled filter (its agent
// installs that: internal/runtime/oci, seccomp_linux.go), and a bare run
// gets the same isolation only by having runc compile the profile.
func bareBundle(b *testing.B, s *testserver.Server, sandboxID string, argv ...string) string {
	return bareBundleIn(b, s, sandboxID, "/chaser-bench/bare", argv...)
}

// bareBundleIn is bareBundle with the containers in cgroup (a runc
// cgroupsPath): containers that run at the same time need their own.
// removeCgroupTree removes the cgroup directory name under every v1
// controller, children first; what is still in use stays.
func removeCgroupTree(name string) {
	if name == "" {
		return
	}
	roots, _ := filepath.Glob("/sys/fs/cgroup/*/" + name)
	for _, root := range roots {
		var dirs []string
		filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			os.Remove(dirs[i])
		}
	}
}

func bareBundleIn(b *testing.B, s *testserver.Server, sandboxID, cgroup string, argv ...string) string {
	src := filepath.Join(s.DataDir, "sandboxes", sandboxID)
	raw, err := os.ReadFile(filepath.Join(src, "config.json"))
	if err != nil {
		b.Fatal(err)
	}
	var spec map[string]any
	if err := json.Unmarshal(raw, &spec); err != nil {
		b.Fatal(err)
	}
	proc := spec["process"].(map[string]any)
	proc["args"] = argv
	spec["root"] = map[string]any{"path": filepath.Join(src, "rootfs")}
	linux := spec["linux"].(map[string]any)
	linux["cgroupsPath"] = cgroup
	if linux["seccomp"] == nil {
		profile, err := oci.SeccompProfile(false)
		if err != nil {
			b.Fatal(err)
		}
		linux["seccomp"] = profile
	}
	// runc removes a container's own cgroup, never its parents: remove
	// the baseline's parent (e.g. /chaser-bench) once the benchmark ends.
	b.Cleanup(func() { removeCgroupTree(strings.Split(strings.TrimPrefix(cgroup, "/"), "/")[0]) })
	dir := b.TempDir()
	// Overlay mounts get upper and work directories of their own: two
	// overlays may not share a work directory.
	mounts, _ := spec["mounts"].([]any)
	for i, m := range mounts {
		m := m.(map[string]any)
		if m["type"] != "overlay" {
			continue
		}
		opts, _ := m["options"].([]any)
		for j, o := range opts {
			parts := strings.Split(o.(string), ",")
			for k, part := range parts {
				for _, key := range []string{"upperdir=", "workdir="} {
					if strings.HasPrefix(part, key) {
						d := filepath.Join(dir, fmt.Sprintf("overlay%d-%s", i, strings.TrimSuffix(key, "dir=")))
						if err := os.MkdirAll(d, 0o755); err != nil {
							b.Fatal(err)
						}
						parts[k] = key + d
					}
				}
			}
			opts[j] = strings.Join(parts, ",")
		}
	}
	out, _ := json.Marshal(spec)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), out, 0o600); err != nil {
		b.Fatal(err)
	}
	return dir
}

// withoutSeccomp returns a copy of bundle (bareBundleIn's) whose config
// has no seccomp profile: runc's cost without compiling one.
func withoutSeccomp(b *testing.B, bundle string) string {
	raw, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		b.Fatal(err)
	}
	var spec map[string]any
	if err := json.Unmarshal(raw, &spec); err != nil {
		b.Fatal(err)
	}
	linux := spec["linux"].(map[string]any)
	delete(linux, "seccomp")
	linux["cgroupsPath"] = linux["cgroupsPath"].(string) + "-noseccomp"
	dir := b.TempDir()
	out, _ := json.Marshal(spec)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), out, 0o600); err != nil {
		b.Fatal(err)
	}
	return dir
}

// BenchmarkCreate measures creating a sandbox and running its first
// command, against `runc run` of the same rootfs and config: with the
// server's defaults (a disk image per sandbox as its quota), and on a
// second server with --no-disk-quota (the writable layer a directory, as
// in the bare run). Neither has egress (test servers run CHASER_EGRESS=none):
// chaser-create+exec-egress is the server's real defaults, a disk quota and
// egress (each sandbox's network namespace, veth, address and rules).
func BenchmarkCreate(b *testing.B) {
	s, c := server(b)
	ctx := context.Background()
	b.Run("chaser-create+exec", func(b *testing.B) { createLoop(b, c, nil) })
	b.Run("chaser-create+exec-noquota", func(b *testing.B) {
		_, nq := server(b, "--no-disk-quota")
		createLoop(b, nq, nil)
	})
	b.Run("chaser-create+exec-egress", func(b *testing.B) {
		_, eg := server(b, "--egress", "internet")
		createLoop(b, eg, nil)
	})
	b.Run("noquota-interleaved", func(b *testing.B) { createInterleaved(b) })
	ref, err := c.CreateSession(ctx, api.CreateSessionRequest{Type: "sandbox", Ephemeral: true})
	if err != nil {
		b.Fatal(err)
	}
	bundle := bareBundle(b, s, ref.ID, "/usr/bin/true")
	b.Run("runc-run", func(b *testing.B) {
		var lat []time.Duration
		for i := 0; i < b.N; i++ {
			t0 := time.Now()
			cmd := runc(s.DataDir, "run", "--bundle", bundle, fmt.Sprintf("bare-%d", i))
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("runc run: %v %s", err, out)
			}
			lat = append(lat, time.Since(t0))
		}
		slices.Sort(lat)
		b.ReportMetric(percentile(lat, 0.5), "p50-ms")
	})
	b.Run("chaser-delete", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			sess, err := c.CreateSession(ctx, api.CreateSessionRequest{Type: "sandbox", Ephemeral: true})
			if err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			if err := c.DeleteSession(ctx, sess.ID); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// createInterleaved compares like with like, on a --no-disk-quota server
// (the configuration of issue 17's ≤ 1.0× goal): each iteration runs, in
// turn, a create whose first command is the argv /usr/bin/true (no shell,
// as the bare run), a bare `runc run` of /usr/bin/true, a create whose
// first command is the command line "true" (which the agent execs
// directly, as bash would: docs/ARCHITECTURE.md, "Exec"), a create whose
// first command is the command line ":" (a builtin: the agent runs bash -c
// :), a bare `runc run` of /bin/bash -c :, and a bare `runc run` of
// /usr/bin/true without the seccomp profile (what runc costs when it
// compiles none); the bare runs use a sandbox's own config (with its
// seccomp profile: bareBundle) and rootfs. Interleaving puts the
// machine's drift into all six alike, and a pause after each lets the
// kernel's deferred teardown of the one before (network namespace,
// mounts) finish outside the next one's time. It reports the six medians.
func createInterleaved(b *testing.B) {
	const settle = 100 * time.Millisecond
	nq, c := server(b, "--no-disk-quota")
	ctx := context.Background()
	ref, err := c.CreateSession(ctx, api.CreateSessionRequest{Type: "sandbox", Ephemeral: true})
	if err != nil {
		b.Fatal(err)
	}
	bareTrue := bareBundleIn(b, nq, ref.ID, "/chaser-bench/bare-true", "/usr/bin/true")
	bareBash := bareBundleIn(b, nq, ref.ID, "/chaser-bench/bare-bash", "/bin/bash", "-c", ":")
	bareNoSC := withoutSeccomp(b, bareTrue)
	chaser := func(req api.ExecRequest) time.Duration {
		t0 := time.Now()
		sess, err := c.CreateSession(ctx, api.CreateSessionRequest{Type: "sandbox", Ephemeral: true})
		if err != nil {
			b.Fatal(err)
		}
		if res, err := c.Exec(ctx, sess.ID, req); err != nil || res.ExitCode != 0 {
			b.Fatal(res, err)
		}
		took := time.Since(t0)
		if err := c.DeleteSession(ctx, sess.ID); err != nil {
			b.Fatal(err)
		}
		time.Sleep(settle)
		return took
	}
	bare := func(bundle, id string) time.Duration {
		t0 := time.Now()
		if out, err := runc(nq.DataDir, "run", "--bundle", bundle, id).CombinedOutput(); err != nil {
			b.Fatalf("runc run: %v %s", err, out)
		}
		took := time.Since(t0)
		time.Sleep(settle)
		return took
	}
	var argv, line, shell, rTrue, rBash, rNoSC []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		argv = append(argv, chaser(api.ExecRequest{Argv: []string{"/usr/bin/true"}}))
		rTrue = append(rTrue, bare(bareTrue, fmt.Sprintf("bare-true-%d", i)))
		line = append(line, chaser(api.ExecRequest{Command: "true"}))
		shell = append(shell, chaser(api.ExecRequest{Command: ":"}))
		rBash = append(rBash, bare(bareBash, fmt.Sprintf("bare-bash-%d", i)))
		rNoSC = append(rNoSC, bare(bareNoSC, fmt.Sprintf("bare-noseccomp-%d", i)))
	}
	for _, l := range [][]time.Duration{argv, line, shell, rTrue, rBash, rNoSC} {
		slices.Sort(l)
	}
	b.ReportMetric(percentile(argv, 0.5), "argv-p50-ms")
	b.ReportMetric(percentile(rTrue, 0.5), "runc-true-p50-ms")
	b.ReportMetric(percentile(line, 0.5), "command-p50-ms")
	b.ReportMetric(percentile(shell, 0.5), "shell-p50-ms")
	b.ReportMetric(percentile(rBash, 0.5), "runc-bash-p50-ms")
	b.ReportMetric(percentile(rNoSC, 0.5), "runc-true-noseccomp-p50-ms")
}

// createLoop creates b.N sandboxes one after the other, each followed by
// its first command (`true`), and reports the median of the two together.
// Deleting each is not timed, nor wait (when not nil), called before each.
func createLoop(b *testing.B, c *client.Client, wait func()) {
	ctx := context.Background()
	var lat []time.Duration
	for i := 0; i < b.N; i++ {
		if wait != nil {
			b.StopTimer()
			wait()
			b.StartTimer()
		}
		t0 := time.Now()
		sess, err := c.CreateSession(ctx, api.CreateSessionRequest{Type: "sandbox", Ephemeral: true})
		if err != nil {
			b.Fatal(err)
		}
		if res, err := c.Exec(ctx, sess.ID, api.ExecRequest{Command: "true"}); err != nil || res.ExitCode != 0 {
			b.Fatal(res, err)
		}
		lat = append(lat, time.Since(t0))
		b.StopTimer()
		if err := c.DeleteSession(ctx, sess.ID); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	slices.Sort(lat)
	b.ReportMetric(percentile(lat, 0.5), "p50-ms")
}

// BenchmarkCreatePooled measures creating a sandbox and running its first
// command when the sandbox comes from the warm pool (--pool-size 4), and
// reports the median (p50-ms): each iteration waits, untimed, until the
// pool is full again, so every create is a hit. The -egress run is the
// server's real defaults (egress on: warm sandboxes are made with their
// network). Compare with BenchmarkCreate's chaser-create+exec (pool off)
// and runc-run.
func BenchmarkCreatePooled(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("skipping: benchmarks run real sandboxes and need root")
	}
	b.Run("chaser-pooled-create+exec", func(b *testing.B) { pooledLoop(b) })
	b.Run("chaser-pooled-create+exec-egress", func(b *testing.B) { pooledLoop(b, "--egress", "internet") })
}

// pooledLoop runs BenchmarkCreatePooled on a server started with args.
func pooledLoop(b *testing.B, args ...string) {
	s := startArgs(b, append([]string{"--pool-size", "4"}, args...)...)
	c := client.New(s.URL, s.AdminKey)
	// Full: the size stops growing for a second (one slot per tier).
	full, since := 0.0, time.Now()
	for deadline := time.Now().Add(time.Minute); full == 0 || time.Since(since) < time.Second; time.Sleep(100 * time.Millisecond) {
		if n := poolSize(b, s); n != full {
			full, since = n, time.Now()
		}
		if time.Now().After(deadline) {
			b.Fatalf("pool did not fill: %v", full)
		}
	}
	b.ResetTimer()
	createLoop(b, c, func() { // every create a hit
		for poolSize(b, s) < full {
			time.Sleep(20 * time.Millisecond)
		}
	})
}

// poolSize reads chaser_pool_sandboxes from the server's /metrics.
func poolSize(b *testing.B, s *testserver.Server) float64 {
	req, _ := http.NewRequest("GET", s.URL+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+s.AdminKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(l, "chaser_pool_sandboxes "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

// BenchmarkExec measures one exec round trip of `true` through the API
// (HTTP → server → agent), against `runc exec` into the same sandbox and
// the host's own `bash -c true`; chaser-exec-bash is the round trip of a
// command line that needs bash (`:`, a builtin), where `true` is exec'd
// directly.
func BenchmarkExec(b *testing.B) {
	s, c := server(b)
	ctx := context.Background()
	sess, err := c.CreateSession(ctx, api.CreateSessionRequest{Type: "sandbox", Ephemeral: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("chaser-exec", func(b *testing.B) {
		lat := make([]time.Duration, 0, b.N)
		profiled := serverProfile(b)
		agent := agentPID(b, s.DataDir, sess.ID)
		scpu, acpu := cpuTime(b, s.Cmd.Process.Pid), cpuTime(b, agent)
		for i := 0; i < b.N; i++ {
			t0 := time.Now()
			if res, err := c.Exec(ctx, sess.ID, api.ExecRequest{Command: "true"}); err != nil || res.ExitCode != 0 {
				b.Fatal(res, err)
			}
			lat = append(lat, time.Since(t0))
		}
		profiled()
		b.ReportMetric(float64((cpuTime(b, s.Cmd.Process.Pid)-scpu).Microseconds())/float64(b.N), "server-CPU-µs/op")
		b.ReportMetric(float64((cpuTime(b, agent)-acpu).Microseconds())/float64(b.N), "agent-CPU-µs/op")
		slices.Sort(lat)
		b.ReportMetric(percentile(lat, 0.5), "p50-ms")
	})
	b.Run("chaser-exec-bash", func(b *testing.B) {
		lat := make([]time.Duration, 0, b.N)
		for i := 0; i < b.N; i++ {
			t0 := time.Now()
			if res, err := c.Exec(ctx, sess.ID, api.ExecRequest{Command: ":"}); err != nil || res.ExitCode != 0 {
				b.Fatal(res, err)
			}
			lat = append(lat, time.Since(t0))
		}
		slices.Sort(lat)
		b.ReportMetric(percentile(lat, 0.5), "p50-ms")
	})
	b.Run("host-bash", BenchmarkHostBash)
	b.Run("runc-exec", func(b *testing.B) {
		var lat []time.Duration
		for i := 0; i < b.N; i++ {
			t0 := time.Now()
			if out, err := runc(s.DataDir, "exec", sess.ID, "/usr/bin/true").CombinedOutput(); err != nil {
				b.Fatalf("runc exec: %v %s", err, out)
			}
			lat = append(lat, time.Since(t0))
		}
		slices.Sort(lat)
		b.ReportMetric(percentile(lat, 0.5), "p50-ms")
	})
}

// BenchmarkIdleMemory creates sandboxes and reports what an idle one costs:
// the agent's RSS and the sandbox cgroup's memory use.
func BenchmarkIdleMemory(b *testing.B) {
	s, c := server(b)
	ctx := context.Background()
	const n = 10
	var ids []string
	for i := 0; i < n; i++ {
		sess, err := c.CreateSession(ctx, api.CreateSessionRequest{Type: "sandbox", Ephemeral: true})
		if err != nil {
			b.Fatal(err)
		}
		ids = append(ids, sess.ID)
	}
	for i := 0; i < b.N; i++ {
		var rss, anon, cg int64
		for _, id := range ids {
			pidb, err := os.ReadFile(filepath.Join(s.DataDir, "sandboxes", id, "pid"))
			if err != nil {
				b.Fatal(err)
			}
			pid := strings.TrimSpace(string(pidb))
			rss += statusKB(b, pid, "VmRSS") * 1024
			anon += statusKB(b, pid, "RssAnon") * 1024
			u, err := os.ReadFile("/sys/fs/cgroup/memory/" + daemon.CgroupParent(s.DataDir) + "/" + id + "/memory.usage_in_bytes")
			if err == nil {
				v, _ := strconv.ParseInt(strings.TrimSpace(string(u)), 10, 64)
				cg += v
			}
		}
		b.ReportMetric(float64(rss)/n/(1<<20), "agent-RSS-MB/sandbox")
		b.ReportMetric(float64(anon)/n/(1<<20), "agent-anon-MB/sandbox")
		b.ReportMetric(float64(cg)/n/(1<<20), "cgroup-MB/sandbox")
	}
}

func statusKB(b *testing.B, pid, field string) int64 {
	raw, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	b.Fatalf("no %s in /proc/%s/status", field, pid)
	return 0
}
