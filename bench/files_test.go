// Package bench holds benchmarks that drive a real `chaser serve` with real
// runc sandboxes, like the integration tests. They need root; without it
// they skip with a message.
//
//	go test ./bench/ -run '^$' -bench Files -benchtime 20x
package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/client"
)

// server is one `chaser serve` shared by the benchmarks.
type server struct {
	cmd     *exec.Cmd
	dataDir string
	c       *client.Client
	session string
}

var (
	srv     *server
	srvErr  error
	srvOnce sync.Once
	tmpDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if srv != nil {
		srv.c.DeleteSession(context.Background(), srv.session)
		srv.cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { srv.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			srv.cmd.Process.Kill()
		}
		os.RemoveAll(srv.dataDir)
	}
	if tmpDir != "" {
		os.RemoveAll(tmpDir)
	}
	os.Exit(code)
}

func start() (*server, error) {
	var err error
	if tmpDir, err = os.MkdirTemp("", "chaser-bench-"); err != nil {
		return nil, err
	}
	bin := filepath.Join(tmpDir, "chaser")
	build := exec.Command("go", "build", "-o", bin, "../cmd/chaser")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build: %v\n%s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	s := &server{dataDir: filepath.Join(tmpDir, "data")}
	s.cmd = exec.Command(bin, "serve", "--addr", addr, "--data-dir", s.dataDir)
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	base := "http://" + addr
	for deadline := time.Now().Add(20 * time.Second); ; {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("server did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}
	key, err := os.ReadFile(filepath.Join(s.dataDir, "admin.key"))
	if err != nil {
		return nil, err
	}
	s.c = client.New(base, strings.TrimSpace(string(key)))
	sess, err := s.c.CreateSession(context.Background(), api.CreateSessionRequest{Type: "sandbox", Ephemeral: true})
	if err != nil {
		return nil, err
	}
	s.session = sess.ID
	return s, nil
}

func shared(b *testing.B) *server {
	if os.Geteuid() != 0 {
		b.Skip("bench: skipping: these benchmarks need root (they run runc)")
	}
	srvOnce.Do(func() { srv, srvErr = start() })
	if srvErr != nil {
		b.Fatal(srvErr)
	}
	return srv
}

func payload(b *testing.B, n int) []byte {
	p := make([]byte, n)
	if _, err := rand.Read(p); err != nil {
		b.Fatal(err)
	}
	return p
}

func (s *server) upload(b *testing.B, p string, data []byte) {
	if _, err := s.c.Upload(b.Context(), s.session, p, bytes.NewReader(data), int64(len(data)), ""); err != nil {
		b.Fatal(err)
	}
}

func benchUpload(b *testing.B, size int) {
	s := shared(b)
	data := payload(b, size)
	b.SetBytes(int64(size))
	b.ResetTimer()
	for b.Loop() {
		s.upload(b, "/workspace/bench.bin", data)
	}
}

func benchDownload(b *testing.B, size int) {
	s := shared(b)
	s.upload(b, "/workspace/down.bin", payload(b, size))
	b.SetBytes(int64(size))
	b.ResetTimer()
	for b.Loop() {
		resp, err := s.c.Download(b.Context(), s.session, "/workspace/down.bin")
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || n != int64(size) {
			b.Fatalf("downloaded %d bytes: %v", n, err)
		}
	}
}

func BenchmarkFilesUpload1MB(b *testing.B)    { benchUpload(b, 1<<20) }
func BenchmarkFilesUpload15MB(b *testing.B)   { benchUpload(b, 15<<20) }
func BenchmarkFilesDownload1MB(b *testing.B)  { benchDownload(b, 1<<20) }
func BenchmarkFilesDownload15MB(b *testing.B) { benchDownload(b, 15<<20) }

// vmHWM returns the peak resident set of pid in KiB.
func vmHWM(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("no VmHWM for %d", pid)
}

// resetHWM resets pid's peak resident set to its current one.
func resetHWM(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

// agentPID is the host pid of the session's agent (the sandbox's init).
func (s *server) agentPID() (int, error) {
	out, err := exec.Command("runc", "--root", filepath.Join(s.dataDir, "runc"), "state", s.session).Output()
	if err != nil {
		return 0, err
	}
	var st struct {
		Pid int `json:"pid"`
	}
	err = json.Unmarshal(out, &st)
	return st.Pid, err
}

// benchPeakRSS reports the peak RSS of the server and of the agent during
// one upload of size bytes, measured from a reset high-water mark: if
// either held the file in memory, the peak would grow with the file.
func benchPeakRSS(b *testing.B, size int) {
	s := shared(b)
	data := payload(b, size)
	apid, err := s.agentPID()
	if err != nil {
		b.Fatal(err)
	}
	var srvPeak, agentPeak int64
	for b.Loop() {
		for _, pid := range []int{s.cmd.Process.Pid, apid} {
			if err := resetHWM(pid); err != nil {
				b.Fatal(err)
			}
		}
		s.upload(b, "/workspace/rss.bin", data)
		sp, err := vmHWM(s.cmd.Process.Pid)
		if err != nil {
			b.Fatal(err)
		}
		ap, err := vmHWM(apid)
		if err != nil {
			b.Fatal(err)
		}
		srvPeak, agentPeak = max(srvPeak, sp), max(agentPeak, ap)
	}
	b.ReportMetric(float64(srvPeak)/1024, "server-peak-RSS-MB")
	b.ReportMetric(float64(agentPeak)/1024, "agent-peak-RSS-MB")
}

func BenchmarkFilesPeakRSSUpload1MB(b *testing.B)  { benchPeakRSS(b, 1<<20) }
func BenchmarkFilesPeakRSSUpload15MB(b *testing.B) { benchPeakRSS(b, 15<<20) }
