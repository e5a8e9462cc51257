package agent

import (
	"context"
	"errors"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/errdefs"
)

// TestImportsStaySmall keeps the agent light: it runs in every sandbox.
func TestImportsStaySmall(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", "github.com/chaserhq/chaser/internal/agent").Output()
	if err != nil {
		t.Fatal(err)
	}
	allowed := []string{"github.com/chaserhq/chaser/api", "github.com/chaserhq/chaser/internal/errdefs",
		"github.com/chaserhq/chaser/internal/httpjson", "github.com/chaserhq/chaser/internal/agent",
		"github.com/chaserhq/chaser/internal/passwd", "github.com/chaserhq/chaser/internal/nice",
		"github.com/creack/pty", "github.com/coder/websocket", "golang.org/x/sys",
		// yamux: the VM mode's one serial stream carries many connections.
		"github.com/hashicorp/yamux",
		// fsnotify: GET /v1/watch (inotify); small, no dependencies beyond x/sys.
		"github.com/fsnotify/fsnotify"}
	for _, dep := range strings.Fields(string(out)) {
		ok := false
		for _, a := range allowed {
			if strings.HasPrefix(dep, a) {
				ok = true
			}
		}
		if !ok {
			t.Errorf("the agent imports %s; keep it to the standard library and small packages", dep)
		}
	}
}

// TestAPI runs the agent on a unix socket and drives it with its client.
func TestAPI(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	a := New(Config{Env: []string{"PATH=/usr/bin:/bin", "BASE=1"}})
	go a.Serve(ctx, l)
	c := NewClient(func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	})
	defer c.Close()

	if h, err := c.Health(ctx); err != nil || h.Status != "ok" {
		t.Fatalf("health = %+v, %v", h, err)
	}
	cmd, err := c.Start(ctx, api.ExecRequest{Command: "echo $BASE$EXTRA; echo e >&2; exit 4", Cwd: "/", Env: map[string]string{"EXTRA": "2"}})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Output(ctx, cmd.ID, 0, true, false, "raw")
	if err != nil {
		t.Fatal(err)
	}
	var buf strings.Builder
	b := make([]byte, 1024)
	for {
		n, err := resp.Body.Read(b)
		buf.Write(b[:n])
		if err != nil {
			break
		}
	}
	resp.Body.Close()
	if got := buf.String(); got != "12\ne\n" && got != "e\n12\n" {
		t.Fatalf("output = %q", got)
	}
	got, err := c.Command(ctx, cmd.ID)
	if err != nil || got.Status != api.CommandExited || got.ExitCode == nil || *got.ExitCode != 4 {
		t.Fatalf("command = %+v, %v", got, err)
	}
	if _, err := c.Command(ctx, "c-nope"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("unknown command: %v", err)
	}
	if err := c.Signal(ctx, cmd.ID, "BOGUS"); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("bad signal: %v", err)
	}
	if _, err := c.Start(ctx, api.ExecRequest{Command: "true", Cwd: "/nope"}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("bad cwd: %v", err)
	}
	list, err := c.Commands(ctx, CommandQuery{})
	if err != nil || len(list.Commands) != 1 || list.NextToken != "" {
		t.Fatalf("commands = %+v, %v", list, err)
	}
}

// serveTest runs an agent with cfg on a unix socket until the test ends
// and returns a client of it.
func serveTest(t testing.TB, cfg Config) *Client {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go New(cfg).Serve(ctx, l)
	c := NewClient(func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	})
	t.Cleanup(func() { c.Close() })
	return c
}
