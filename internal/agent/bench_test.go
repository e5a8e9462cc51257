package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/chaserhq/chaser/api"
)

// BenchmarkExecTrue drives an agent in this process the way the server
// runs a foreground command (start, then follow its NDJSON events to the
// exit event), so the agent's side of an exec can be profiled:
// `go test ./internal/agent -run '^$' -bench ExecTrue -cpuprofile cpu.out`.
// It reports the dials per command: 0 once connections are reused.
func BenchmarkExecTrue(b *testing.B) {
	sock := filepath.Join(b.TempDir(), "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a := New(Config{Env: []string{"PATH=/usr/bin:/bin"}})
	go a.Serve(ctx, l)
	var dials atomic.Int64
	c := NewClient(func(ctx context.Context) (net.Conn, error) {
		dials.Add(1)
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	})
	defer c.Close()
	req := api.ExecRequest{Command: "true", Cwd: "/"}
	// twoTrips is how the server ran a command before Client.Run.
	twoTrips := func() (*http.Response, error) {
		cmd, err := c.Start(ctx, req)
		if err != nil {
			return nil, err
		}
		return c.Output(ctx, cmd.ID, 0, true, true, "ndjson")
	}
	oneTrip := func() (*http.Response, error) {
		_, resp, err := c.Run(ctx, req)
		return resp, err
	}
	for _, bc := range []struct {
		name  string
		start func() (*http.Response, error)
	}{{"start+output", twoTrips}, {"run", oneTrip}} {
		b.Run(bc.name, func(b *testing.B) { benchRun(b, bc.start, &dials) })
	}
}

func benchRun(b *testing.B, start func() (*http.Response, error), dials *atomic.Int64) {
	run := func() {
		resp, err := start()
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			var ev api.Event
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				b.Fatal(err)
			}
			if ev.Type == "exit" {
				return
			}
		}
		b.Fatal("no exit event")
	}
	run()
	dials.Store(0)
	b.ResetTimer()
	for range b.N {
		run()
	}
	b.ReportMetric(float64(dials.Load())/float64(b.N), "dials/op")
}
