package agent

import (
	"context"
	"errors"
	"fmt"
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

// TestWatchNewTree checks that a recursive watch reports what was made in
// a new directory before the agent could watch it (mkdir d && echo > d/f,
// nested), each creation once.
func TestWatchNewTree(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	c := serveTest(t, Config{})
	dir := t.TempDir()
	ws, err := c.Watch(ctx, dir, true)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	const n = 20
	for i := range n {
		d := filepath.Join(dir, fmt.Sprintf("d%d", i), "deep")
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "f"), []byte("f"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A marker after them all: once it is seen, every earlier event is in.
	if err := os.WriteFile(filepath.Join(dir, "done"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	creates := map[string]int{}
	for {
		ev, err := ws.Next()
		if err != nil {
			t.Fatalf("next: %v (creates so far %v)", err, creates)
		}
		if ev.Op == WatchCreate {
			creates[ev.Name]++
		}
		if ev.Name == "done" {
			break
		}
	}
	for i := range n {
		for _, p := range []string{fmt.Sprintf("d%d", i), fmt.Sprintf("d%d/deep", i), fmt.Sprintf("d%d/deep/f", i)} {
			if creates[p] != 1 {
				t.Errorf("%s created %d times in the events, want 1 (all: %v)", p, creates[p], creates)
			}
		}
	}
}
