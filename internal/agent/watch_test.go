package agent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chaserhq/chaser/internal/errdefs"
)

// TestWatch runs the agent on a unix socket and watches a directory with
// its client: a recursive watch sees changes in a subdirectory created
// after the watch began.
func TestWatch(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	c := serveTest(t, Config{})

	dir := t.TempDir()
	if _, err := c.Watch(ctx, filepath.Join(dir, "nope"), false); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("watch of a missing directory: %v", err)
	}
	if _, err := c.Watch(ctx, "rel", false); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("watch of a relative path: %v", err)
	}
	ws, err := c.Watch(ctx, dir, true)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	want := []string{"sub", "sub/x"}
	go func() {
		// The agent adds the watch of sub when it sees sub created;
		// retry the file until that happened.
		for i := 0; i < 50 && ctx.Err() == nil; i++ {
			_ = os.WriteFile(filepath.Join(dir, "sub", "x"), []byte("x"), 0o644)
			time.Sleep(100 * time.Millisecond)
		}
	}()
	for len(want) > 0 {
		ev, err := ws.Next()
		if err != nil {
			t.Fatalf("next: %v (still waiting for %+v)", err, want)
		}
		if ev.Name == want[0] && (ev.Op == WatchCreate || ev.Op == WatchWrite) {
			want = want[1:]
		}
	}
}
