package bench

// runc against runsc in one server and one run:
// go test ./bench/ -run '^$' -bench Runtimes -benchtime 20x
// runc against runc with --userns-remap (two servers, one run):
// go test ./bench/ -run '^$' -bench Userns -benchtime 20x

import (
	"bytes"
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/client"
	"github.com/chaserhq/chaser/internal/daemon"
	"github.com/chaserhq/chaser/internal/testserver"
)

// BenchmarkRuntimes compares runc and runsc (gVisor, systrap) in one
// server (free tier → runsc, paid → runc): create + first command, one exec
// round trip, one PTY keystroke echo, and an idle sandbox's memory (its
// cgroup's usage: under runsc that includes gVisor's sentry and gofer).
func BenchmarkRuntimes(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("skipping: benchmarks run real sandboxes and need root")
	}
	s, err := testserver.Start("", "--runtime", "runc", "--tier-runtime", "free=runsc")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Stop(); os.RemoveAll(s.DataDir) })
	for _, rt := range []struct{ name, tier, cgroup string }{
		{"runc", api.TierPaid, daemon.CgroupParent(s.DataDir)},
		{"runsc", api.TierFree, daemon.CgroupParent(s.DataDir) + "-runsc"},
	} {
		sandboxBench(b, s, rt.name, rt.name, rt.tier, rt.cgroup)
	}
}

// BenchmarkUserns compares runc sandboxes whose root is host root with
// runc sandboxes under --userns-remap (root is host uid 100000), on two
// servers in one run, with the host image: the same measurements as
// BenchmarkRuntimes.
func BenchmarkUserns(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("skipping: benchmarks run real sandboxes and need root")
	}
	for _, v := range []struct{ name, remap string }{{"runc", "off"}, {"runc-userns", "100000:65536"}} {
		s, err := testserver.Start("", "--runtime", "runc", "--userns-remap", v.remap)
		if err != nil {
			b.Fatal(err)
		}
		// Stopped even when a benchmark fails: a remapped server unmounts
		// its idmapped /usr (in the data dir) at a graceful stop.
		b.Cleanup(func() { s.Stop(); os.RemoveAll(s.DataDir) })
		sandboxBench(b, s, v.name, "runc", api.TierPaid, daemon.CgroupParent(s.DataDir))
		s.Stop()
	}
}

// sandboxBench runs, on server s, the benchmarks of a sandbox whose
// sessions (made by an account of tier) must run under runtime: create +
// first command, one exec round trip, one PTY keystroke echo, and an idle
// sandbox's memory (its memory cgroup's usage, under cgroup parent
// cgroup). name prefixes the benchmarks.
func sandboxBench(b *testing.B, s *testserver.Server, name, runtime, tier, cgroup string) {
	admin := client.New(s.URL, s.AdminKey)
	acct, err := admin.CreateAccount(b.Context(), api.CreateAccountRequest{Name: "bench-" + name, Tier: tier})
	if err != nil {
		b.Fatal(err)
	}
	c := client.New(s.URL, acct.APIKey)
	newSession := func(b *testing.B) string {
		sess, err := c.CreateSession(b.Context(), api.CreateSessionRequest{Type: "sandbox", Ephemeral: true})
		if err != nil {
			b.Fatal(err)
		}
		if sess.Runtime != runtime {
			b.Fatalf("session runtime %q, want %q", sess.Runtime, runtime)
		}
		return sess.ID
	}
	b.Run(name+"/create+exec", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			id := newSession(b)
			if res, err := c.Exec(b.Context(), id, api.ExecRequest{Command: "true"}); err != nil || res.ExitCode != 0 {
				b.Fatal(res, err)
			}
			b.StopTimer()
			if err := c.DeleteSession(b.Context(), id); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	})
	id := newSession(b)
	b.Run(name+"/exec", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if res, err := c.Exec(b.Context(), id, api.ExecRequest{Command: "true"}); err != nil || res.ExitCode != 0 {
				b.Fatal(res, err)
			}
		}
	})
	b.Run(name+"/pty-echo", func(b *testing.B) { ptyEcho(b, c, id) })
	b.Run(name+"/idle-memory", func(b *testing.B) {
		time.Sleep(2 * time.Second) // let the exec and terminal above settle
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			u, err := os.ReadFile("/sys/fs/cgroup/memory/" + cgroup + "/" + id + "/memory.usage_in_bytes")
			if err != nil {
				b.Fatal(err)
			}
			v, _ := strconv.ParseInt(strings.TrimSpace(string(u)), 10, 64)
			b.ReportMetric(float64(v)/(1<<20), "cgroup-MB")
		}
	})
	c.DeleteSession(context.Background(), id)
}

// ptyEcho measures keystroke round trips on a human-mode terminal of
// session id (as BenchmarkPTYKeystrokeEcho does).
func ptyEcho(b *testing.B, c *client.Client, id string) {
	ctx := b.Context()
	p, err := c.DialPTY(ctx, id, client.PTYOptions{Mode: api.PTYModeHuman})
	if err != nil {
		b.Fatal(err)
	}
	defer p.CloseNow()
	if _, _, err := p.Next(ctx); err != nil {
		b.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	samples := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		key := []byte("x")
		if i%2 == 1 {
			key = []byte{0x7f}
		}
		t0 := time.Now()
		if err := p.Write(ctx, key); err != nil {
			b.Fatal(err)
		}
		for {
			data, _, err := p.Next(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if len(data) > 0 && (i%2 == 1 || bytes.Contains(data, key)) {
				break
			}
		}
		samples = append(samples, time.Since(t0))
	}
	b.StopTimer()
	reportLatency(b, samples)
}
