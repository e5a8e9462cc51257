package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/client"
	"github.com/chaserhq/chaser/internal/testserver"
)

// BenchmarkDev measures `chaser dev` (the real binary, against a real
// server and sandbox):
//
//   - initial-2000-small, initial-50MB: from starting `chaser dev DIR
//     --json --session ID` to its ready event (everything in /workspace),
//     with an empty /workspace each time; files/s and MB/s;
//
//   - restart-2000-unchanged: the same tree already in /workspace, so the
//     reconcile compares hashes and sends nothing;
//
//   - edit-to-visible: from a local write to its new content being
//     readable in the sandbox (polled through the download endpoint every
//     2 ms); p50 and p90 in ms.
//
//     sudo go test ./bench -run '^$' -bench Dev -benchtime 5x
func BenchmarkDev(b *testing.B) {
	s, c := server(b)
	ctx := context.Background()
	sess, err := c.CreateSession(ctx, api.CreateSessionRequest{Type: "sandbox", Ephemeral: true})
	if err != nil {
		b.Fatal(err)
	}
	id := sess.ID
	small := b.TempDir()
	for i := 0; i < 2000; i++ {
		writeBenchFile(b, filepath.Join(small, fmt.Sprintf("d%02d", i%40), fmt.Sprintf("f%04d.txt", i)), 1024)
	}
	large := b.TempDir()
	for i := 0; i < 50; i++ {
		writeBenchFile(b, filepath.Join(large, fmt.Sprintf("blob%02d.bin", i)), 1<<20)
	}
	initial := func(dir string, files int, bytes int64) func(b *testing.B) {
		return func(b *testing.B) {
			var total time.Duration
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				clearWorkspace(b, c, id)
				b.StartTimer()
				start := time.Now()
				d := startDev(b, s, id, dir)
				ready := d.waitReady(b)
				total += time.Since(start)
				b.StopTimer()
				d.stop(b)
				if ready.Uploaded != files || ready.Bytes != bytes {
					b.Fatalf("ready %+v, want %d entries and %d bytes", ready, files, bytes)
				}
				b.StartTimer()
			}
			sec := total.Seconds() / float64(b.N)
			b.ReportMetric(float64(files)/sec, "entries/s")
			b.ReportMetric(float64(bytes)/(1<<20)/sec, "MB/s")
		}
	}
	b.Run("initial-2000-small", initial(small, 2040, 2000*1024))
	b.Run("initial-50MB", initial(large, 50, 50<<20))
	b.Run("restart-2000-unchanged", func(b *testing.B) {
		clearWorkspace(b, c, id)
		d := startDev(b, s, id, small)
		d.waitReady(b)
		d.stop(b)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			d := startDev(b, s, id, small)
			ready := d.waitReady(b)
			b.StopTimer()
			d.stop(b)
			if ready.Uploaded != 0 || ready.Deleted != 0 {
				b.Fatalf("restart sent or deleted something: %+v", ready)
			}
			b.StartTimer()
		}
	})
	b.Run("edit-to-visible", func(b *testing.B) {
		clearWorkspace(b, c, id)
		dir := b.TempDir()
		d := startDev(b, s, id, dir)
		d.waitReady(b)
		defer d.stop(b)
		var lat []time.Duration
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			want := fmt.Sprintf("edit %d\n", i)
			start := time.Now()
			if err := os.WriteFile(filepath.Join(dir, "edited.txt"), []byte(want), 0o644); err != nil {
				b.Fatal(err)
			}
			for {
				if readRemote(c, id, "/workspace/edited.txt") == want {
					break
				}
				if time.Since(start) > 30*time.Second {
					b.Fatalf("edit %d not visible after 30s", i)
				}
				time.Sleep(2 * time.Millisecond)
			}
			lat = append(lat, time.Since(start))
		}
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*9/10].Microseconds())/1000, "p90-ms")
	})
}

func writeBenchFile(b *testing.B, p string, n int) {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(p, payload(b, n), 0o644); err != nil {
		b.Fatal(err)
	}
}

func clearWorkspace(b *testing.B, c *client.Client, id string) {
	res, err := c.Exec(context.Background(), id, api.ExecRequest{Command: "rm -rf /workspace && mkdir /workspace"})
	if err != nil || res.ExitCode != 0 {
		b.Fatal(res, err)
	}
}

func readRemote(c *client.Client, id, p string) string {
	resp, err := c.Download(context.Background(), id, p)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return string(data)
}

// devProc is a running `chaser dev --json`.
type devProc struct {
	cmd    *exec.Cmd
	events chan api.DevEvent
}

func startDev(b *testing.B, s *testserver.Server, id, dir string) *devProc {
	bin, err := testserver.Binary()
	if err != nil {
		b.Fatal(err)
	}
	d := &devProc{cmd: exec.Command(bin, "dev", dir, "--json", "--session", id), events: make(chan api.DevEvent, 1024)}
	d.cmd.Env = append(os.Environ(), "CHASER_API_URL="+s.URL, "CHASER_API_KEY="+s.AdminKey)
	d.cmd.Stderr = os.Stderr
	out, err := d.cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	go func() {
		defer close(d.events)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var ev api.DevEvent
			if json.Unmarshal(sc.Bytes(), &ev) == nil {
				select {
				case d.events <- ev:
				default: // nobody reads sync events here
				}
			}
		}
	}()
	return d
}

func (d *devProc) waitReady(b *testing.B) api.DevEvent {
	for ev := range d.events {
		if ev.Type == "ready" {
			return ev
		}
	}
	d.cmd.Wait()
	b.Fatalf("chaser dev ended before ready: %v", d.cmd.ProcessState)
	return api.DevEvent{}
}

func (d *devProc) stop(b *testing.B) {
	d.cmd.Process.Signal(syscall.SIGINT)
	if err := d.cmd.Wait(); err != nil {
		b.Fatalf("chaser dev: %v", err)
	}
}
