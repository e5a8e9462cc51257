package bench

// PTY benchmarks: go test ./bench/ -run '^$' -bench PTY -benchtime 1000x

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/client"
)

// ptySession starts a server (bench's server) and a sandbox on it.
func ptySession(b *testing.B) (*client.Client, string) {
	_, c := server(b)
	sess, err := c.CreateSession(b.Context(), api.CreateSessionRequest{Type: "sandbox", Ephemeral: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.DeleteSession(context.Background(), sess.ID) })
	return c, sess.ID
}

// reportLatency adds p50 and p95 of the samples to the benchmark's output.
func reportLatency(b *testing.B, samples []time.Duration) {
	if len(samples) == 0 {
		return
	}
	slices.Sort(samples)
	pct := func(p float64) float64 {
		return float64(samples[int(p*float64(len(samples)-1))].Microseconds())
	}
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.95), "p95-µs")
}

// BenchmarkPTYKeystrokeEcho measures one keystroke's round trip: a byte
// sent in a binary frame through server and agent to bash's line editor on
// the PTY, and its echo back. Keys alternate between "x" and Backspace so
// the line stays short.
func BenchmarkPTYKeystrokeEcho(b *testing.B) {
	c, id := ptySession(b)
	ptyEcho(b, c, id)
}

// BenchmarkPTYAgentCommand measures an agent-mode command's round trip:
// a "run" message for `true` to its "done" message.
func BenchmarkPTYAgentCommand(b *testing.B) {
	c, id := ptySession(b)
	ctx := b.Context()
	p, err := c.DialPTY(ctx, id, client.PTYOptions{Mode: api.PTYModeAgent})
	if err != nil {
		b.Fatal(err)
	}
	defer p.CloseNow()
	samples := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		out, done, err := p.RunCommand(ctx, "true")
		if err != nil || len(out) != 0 || done.ExitCode == nil || *done.ExitCode != 0 {
			b.Fatalf("run: %q %+v %v", out, done, err)
		}
		samples = append(samples, time.Since(t0))
	}
	b.StopTimer()
	reportLatency(b, samples)
}

// BenchmarkPTYBaselineHTTPExec is the HTTP exec of `true` in the same kind of sandbox,
// for comparison: a new process per command, no shell state.
func BenchmarkPTYBaselineHTTPExec(b *testing.B) {
	c, id := ptySession(b)
	ctx := b.Context()
	samples := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		res, err := c.Exec(ctx, id, api.ExecRequest{Command: "true"})
		if err != nil || res.ExitCode != 0 {
			b.Fatalf("exec: %+v %v", res, err)
		}
		samples = append(samples, time.Since(t0))
	}
	b.StopTimer()
	reportLatency(b, samples)
}
