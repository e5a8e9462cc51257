package bench

import (
	"context"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/chaserhq/chaser/api"
)

// BenchmarkResume compares starting a session on an existing workspace
// with creating an ephemeral sandbox, and reports the disk a fresh
// workspace takes after one session.
func BenchmarkResume(b *testing.B) {
	s, c := server(b)
	ctx := context.Background()
	ws, err := c.CreateWorkspace(ctx, api.CreateWorkspaceRequest{Name: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	cycle := func(b *testing.B, req api.CreateSessionRequest) {
		for i := 0; i < b.N; i++ {
			sess, err := c.CreateSession(ctx, req)
			if err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if err := c.DeleteSession(ctx, sess.ID); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	}
	b.Run("workspace-resume", func(b *testing.B) { cycle(b, api.CreateSessionRequest{Type: "sandbox", Workspace: "bench"}) })
	b.Run("ephemeral-create", func(b *testing.B) { cycle(b, api.CreateSessionRequest{Type: "sandbox", Ephemeral: true}) })
	b.Run("workspace-disk", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			out, err := exec.Command("du", "-sk", filepath.Join(s.DataDir, "workspaces", ws.ID)).Output()
			if err != nil {
				b.Fatal(err)
			}
			kb, _ := strconv.ParseFloat(strings.Fields(string(out))[0], 64)
			b.ReportMetric(kb, "KiB-on-disk")
		}
	})
}
