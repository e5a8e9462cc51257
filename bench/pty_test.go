// Package bench holds benchmarks that drive a real chaser server with real
// runc sandboxes. They need root; run them with
//
//	go test ./bench/ -run '^$' -bench PTY -benchtime 500x
package bench

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/client"
)

var (
	srvOnce sync.Once
	srvURL  string
	srvKey  string
	srvErr  error
)

// server builds the binary and starts one server for all benchmarks, with
// its own data directory and port. It is stopped when the process exits
// (TestMain).
func server(b *testing.B) (*client.Client, string) {
	b.Helper()
	if os.Geteuid() != 0 {
		b.Skip("bench: needs root (runc sandboxes)")
	}
	srvOnce.Do(func() { srvURL, srvKey, srvErr = startServer() })
	if srvErr != nil {
		b.Fatal(srvErr)
	}
	c := client.New(srvURL, srvKey)
	s, err := c.CreateSession(b.Context(), api.CreateSessionRequest{Type: "sandbox", Ephemeral: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.DeleteSession(context.Background(), s.ID) })
	return c, s.ID
}

var stop func()

func TestMain(m *testing.M) {
	code := m.Run()
	if stop != nil {
		stop()
	}
	os.Exit(code)
}

func startServer() (string, string, error) {
	dir, err := os.MkdirTemp("", "chaser-bench-")
	if err != nil {
		return "", "", err
	}
	bin := filepath.Join(dir, "chaser")
	build := exec.Command("go", "build", "-o", bin, "../cmd/chaser")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("build: %v: %s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", "", err
	}
	addr := l.Addr().String()
	l.Close()
	data := filepath.Join(dir, "data")
	cmd := exec.Command(bin, "serve", "--addr", addr, "--data-dir", data)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		return "", "", err
	}
	stop = func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		os.RemoveAll(dir)
	}
	url := "http://" + addr
	for deadline := time.Now().Add(20 * time.Second); ; {
		if resp, err := http.Get(url + "/healthz"); err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			return "", "", fmt.Errorf("server did not start: %s", log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	key, err := os.ReadFile(filepath.Join(data, "admin.key"))
	return url, strings.TrimSpace(string(key)), err
}

// report adds p50 and p95 of the samples to the benchmark's output.
func report(b *testing.B, samples []time.Duration) {
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
	c, id := server(b)
	ctx := b.Context()
	p, err := c.DialPTY(ctx, id, client.PTYOptions{Mode: api.PTYModeHuman})
	if err != nil {
		b.Fatal(err)
	}
	defer p.CloseNow()
	// Wait for the prompt.
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
	report(b, samples)
}

// BenchmarkPTYAgentCommand measures an agent-mode command's round trip:
// a "run" message for `true` to its "done" message.
func BenchmarkPTYAgentCommand(b *testing.B) {
	c, id := server(b)
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
	report(b, samples)
}

// BenchmarkExecTrue is the HTTP exec of `true` in the same kind of sandbox,
// for comparison: a new process per command, no shell state.
func BenchmarkExecTrue(b *testing.B) {
	c, id := server(b)
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
	report(b, samples)
}
