package bench

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chaserhq/chaser/api"
)

// BenchmarkStreamExact streams 2 GiB of random bytes out of a sandbox and
// checks them against the sum the command computed: a stream delivers every
// byte. It reports the throughput; run it once:
// `go test ./bench -run '^$' -bench StreamExact -benchtime 1x`.
func BenchmarkStreamExact(b *testing.B) {
	const size = 2 << 30
	_, c := server(b)
	ctx := context.Background()
	sess, err := c.CreateSession(ctx, api.CreateSessionRequest{Type: "sandbox", Ephemeral: true})
	if err != nil {
		b.Fatal(err)
	}
	defer c.DeleteSession(ctx, sess.ID)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		h := sha256.New()
		var n int64
		var stderr string
		exit, err := c.ExecStream(ctx, sess.ID, api.ExecRequest{
			Command: fmt.Sprintf("{ head -c %d /dev/urandom | tee /dev/fd/3 | sha256sum >&2; } 3>&1", size),
		}, func(ev api.Event) error {
			data := []byte(ev.Data)
			if ev.Encoding == "base64" {
				if data, err = base64.StdEncoding.DecodeString(ev.Data); err != nil {
					return err
				}
			}
			switch ev.Type {
			case "stdout":
				h.Write(data)
				n += int64(len(data))
			case "stderr":
				stderr += string(data)
			}
			return nil
		})
		if err != nil || exit.ExitCode == nil || *exit.ExitCode != 0 {
			b.Fatalf("exit %+v, %v", exit, err)
		}
		want, _, _ := strings.Cut(stderr, " ")
		if got := hex.EncodeToString(h.Sum(nil)); n != size || got != want {
			b.Fatalf("received %d of %d bytes, sha256 %s, the command saw %s", n, size, got, want)
		}
		b.ReportMetric(float64(size)/(1<<20)/time.Since(start).Seconds(), "MiB/s")
	}
}

// BenchmarkListMemory measures the server's peak RSS while 20 clients list
// the commands of a session that runs 500 background commands with 100 KB
// command texts each (a list used to answer all of them in full, 50 MB a
// request). Run it once:
// `go test ./bench -run '^$' -bench ListMemory -benchtime 1x`.
func BenchmarkListMemory(b *testing.B) {
	s, c := server(b)
	ctx := context.Background()
	sess, err := c.CreateSession(ctx, api.CreateSessionRequest{Type: "sandbox", Ephemeral: true})
	if err != nil {
		b.Fatal(err)
	}
	defer c.DeleteSession(ctx, sess.ID)
	text := "exec sleep 600 # " + strings.Repeat("x", 100<<10)
	for range 500 {
		if _, err := c.StartBackground(ctx, sess.ID, api.ExecRequest{Command: text}); err != nil {
			b.Fatal(err)
		}
	}
	pid := s.Cmd.Process.Pid
	before := procStatusKB(b, pid, "VmRSS")
	b.ResetTimer()
	var body int64
	for range b.N {
		var wg sync.WaitGroup
		var mu sync.Mutex
		for range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := c.Request(ctx, "GET", "/v1/sessions/"+sess.ID+"/commands", nil, "")
				if err != nil {
					b.Error(err)
					return
				}
				n, _ := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				mu.Lock()
				body = n
				mu.Unlock()
			}()
		}
		wg.Wait()
	}
	b.StopTimer()
	b.ReportMetric(float64(before)/1024, "server-RSS-before-MB")
	b.ReportMetric(float64(procStatusKB(b, pid, "VmHWM"))/1024, "server-peak-RSS-MB")
	b.ReportMetric(float64(body)/(1<<20), "answer-MB")
}

// procStatusKB reads a kB field of /proc/PID/status.
func procStatusKB(b *testing.B, pid int, field string) int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	b.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}
