// Package testserver builds the chaser binary and runs real servers for
// benchmarks (and tests outside the integration package).
package testserver

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

var (
	buildOnce sync.Once
	binary    string
	buildErr  error
)

// Binary builds the static chaser binary, with chaser-agent beside it (as
// shipped), once per process and returns chaser's path.
//
// CHASER_TEST_BIN names a prebuilt chaser instead (with chaser-agent beside
// it), e.g. one built with -race.
func Binary() (string, error) {
	if p := os.Getenv("CHASER_TEST_BIN"); p != "" {
		return p, nil
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "chaser-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binary = filepath.Join(dir, "chaser")
		cmd := exec.Command("go", "build", "-o", dir+"/", "github.com/chaserhq/chaser/cmd/chaser", "github.com/chaserhq/chaser/cmd/chaser-agent")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	return binary, buildErr
}

// Server is a running `chaser serve`.
type Server struct {
	URL, Addr, DataDir, AdminKey string
	Cmd                          *exec.Cmd
	mu                           sync.Mutex
	log                          bytes.Buffer
}

type logWriter struct{ s *Server }

func (w logWriter) Write(p []byte) (int, error) {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	return w.s.log.Write(p)
}

// Log returns what the server printed.
func (s *Server) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

// Start starts a server on a free loopback port with data in dataDir (a new
// temporary directory when empty) and waits until it answers. Its warm
// pool is off (--pool-size 0) unless args set --pool-size: tests that
// count sandboxes or time creates say what pool they want.
func Start(dataDir string, args ...string) (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	return StartBinary(bin, dataDir, args...)
}

// StartBinary is Start with the chaser binary bin (and the chaser-agent
// beside it), e.g. a copy beside an agent a test broke on purpose.
func StartBinary(bin, dataDir string, args ...string) (*Server, error) {
	if !slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--pool-size") }) {
		args = append([]string{"--pool-size", "0"}, args...)
	}
	var err error
	if dataDir == "" {
		if dataDir, err = os.MkdirTemp("", "chaser-data-"); err != nil {
			return nil, err
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	s := &Server{URL: "http://" + addr, Addr: addr, DataDir: dataDir}
	s.Cmd = exec.Command(bin, append([]string{"serve", "--addr", addr, "--data-dir", dataDir}, args...)...)
	s.Cmd.Env = serverEnv()
	s.Cmd.Stdout, s.Cmd.Stderr = logWriter{s}, logWriter{s}
	if err := s.Cmd.Start(); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(s.URL + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			s.Cmd.Process.Kill()
			s.Cmd.Wait()
			return nil, fmt.Errorf("server did not start:\n%s", s.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
	key, err := os.ReadFile(filepath.Join(dataDir, "admin.key"))
	if err != nil {
		return nil, err
	}
	s.AdminKey = strings.TrimSpace(string(key))
	return s, nil
}

// serverEnv is this process's environment without CHASER_* variables: a
// test server is configured by its flags only, whatever the machine's
// environment says (CHASER_DOMAIN, CHASER_CORS_ORIGINS, …).
func serverEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		// CHASER_DEBUG_PPROF passes: a benchmark's server may be profiled.
		if !strings.HasPrefix(kv, "CHASER_") || strings.HasPrefix(kv, "CHASER_DEBUG_PPROF=") {
			env = append(env, kv)
		}
	}
	// Test servers give sandboxes no egress unless a test asks for it
	// (--egress internet or a config file's tier): most tests need none,
	// and each server with egress holds a subnet, a table and veths.
	return append(env, "CHASER_EGRESS=none")
}

// Stop stops the server gracefully (SIGTERM) and waits for it.
func (s *Server) Stop() error {
	if s.Cmd.ProcessState != nil {
		return nil
	}
	s.Cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- s.Cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(90 * time.Second):
		s.Cmd.Process.Kill()
		return fmt.Errorf("server did not stop within 90s")
	}
}
