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

// TestRunOneRoundTrip: Client.Run starts a command and streams its events
// in one request to the agent; against an agent that predates it (one that
// ignores ?follow=1, as a sandbox started before an upgrade runs) it
// falls back to start, then output. Either way the events are the same.
func TestRunOneRoundTrip(t *testing.T) {
	a := New(Config{Env: []string{"PATH=/usr/bin:/bin"}})
	for _, tc := range []struct {
		name     string
		handler  http.Handler
		requests int64
	}{
		{"current agent", a.Handler(), 1},
		{"agent without follow on start", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			q := r.URL.Query()
			if r.Method == http.MethodPost && q.Has("follow") {
				q.Del("follow")
				r.URL.RawQuery = q.Encode()
			}
			a.Handler().ServeHTTP(w, r)
		}), 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sock := filepath.Join(t.TempDir(), "agent.sock")
			l, err := net.Listen("unix", sock)
			if err != nil {
				t.Fatal(err)
			}
			var requests atomic.Int64
			srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				requests.Add(1)
				tc.handler.ServeHTTP(w, r)
			})}
			go srv.Serve(l)
			defer srv.Close()
			c := NewClient(func(ctx context.Context) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", sock)
			})
			defer c.Close()
			id, resp, err := c.Run(t.Context(), api.ExecRequest{Command: "echo out; echo err >&2; exit 3", Cwd: "/"})
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if id == "" {
				t.Fatal("no command id")
			}
			got := map[string]string{}
			var exit *api.Event
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				var ev api.Event
				if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
					t.Fatal(err)
				}
				if ev.Type == "exit" {
					exit = &ev
					break
				}
				got[ev.Type] += ev.Data
			}
			if got["stdout"] != "out\n" || got["stderr"] != "err\n" || exit == nil || exit.ExitCode == nil || *exit.ExitCode != 3 {
				t.Fatalf("events %q, exit %+v", got, exit)
			}
			if n := requests.Load(); n != tc.requests {
				t.Errorf("%d requests to the agent, want %d", n, tc.requests)
			}
			if cmd, err := c.Command(t.Context(), id); err != nil || cmd.Status != api.CommandExited {
				t.Errorf("command %s = %+v, %v", id, cmd, err)
			}
		})
	}
}
