package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/client"
)

// BenchmarkFiles measures upload and download throughput (MB/s, through the
// API: client → server → agent → sandbox disk, with fsync) for 1 MB and
// 15 MB files, and the peak RSS of the server and of the agent during one
// upload, from a reset high-water mark (clear_refs 5): if either held the
// file in memory, the peak would grow with the file.
//
//	sudo go test ./bench -run '^$' -bench Files -benchtime 20x
func BenchmarkFiles(b *testing.B) {
	s, c := server(b)
	ctx := context.Background()
	sess, err := c.CreateSession(ctx, api.CreateSessionRequest{Type: "sandbox", Ephemeral: true})
	if err != nil {
		b.Fatal(err)
	}
	id := sess.ID
	for _, size := range []int{1 << 20, 15 << 20} {
		data := payload(b, size)
		name := fmt.Sprintf("%dMB", size>>20)
		b.Run("upload-"+name, func(b *testing.B) {
			b.SetBytes(int64(size))
			for b.Loop() {
				upload(b, c, id, "/workspace/bench.bin", data)
			}
		})
		b.Run("download-"+name, func(b *testing.B) {
			upload(b, c, id, "/workspace/down.bin", data)
			b.SetBytes(int64(size))
			b.ResetTimer()
			for b.Loop() {
				resp, err := c.Download(ctx, id, "/workspace/down.bin")
				if err != nil {
					b.Fatal(err)
				}
				n, err := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil || n != int64(size) {
					b.Fatalf("downloaded %d bytes: %v", n, err)
				}
			}
		})
		b.Run("peak-rss-upload-"+name, func(b *testing.B) {
			pidb, err := os.ReadFile(filepath.Join(s.DataDir, "sandboxes", id, "pid"))
			if err != nil {
				b.Fatal(err)
			}
			agentPID := strings.TrimSpace(string(pidb))
			serverPID := strconv.Itoa(s.Cmd.Process.Pid)
			var srvPeak, agentPeak int64
			for b.Loop() {
				for _, pid := range []string{serverPID, agentPID} {
					if err := os.WriteFile("/proc/"+pid+"/clear_refs", []byte("5"), 0); err != nil {
						b.Fatal(err)
					}
				}
				upload(b, c, id, "/workspace/rss.bin", data)
				srvPeak = max(srvPeak, statusKB(b, serverPID, "VmHWM"))
				agentPeak = max(agentPeak, statusKB(b, agentPID, "VmHWM"))
			}
			b.ReportMetric(float64(srvPeak)/1024, "server-peak-RSS-MB")
			b.ReportMetric(float64(agentPeak)/1024, "agent-peak-RSS-MB")
		})
	}
}

func payload(b *testing.B, n int) []byte {
	p := make([]byte, n)
	if _, err := rand.Read(p); err != nil {
		b.Fatal(err)
	}
	return p
}

func upload(b *testing.B, c *client.Client, id, p string, data []byte) {
	if _, err := c.Upload(context.Background(), id, p, bytes.NewReader(data), int64(len(data)), client.UploadOptions{}); err != nil {
		b.Fatal(err)
	}
}
