package integration

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/daemon"
)

// createRaw posts a create and returns its status, Retry-After and body.
func createRaw(t *testing.T, s *Server, key, body string) (int, string, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), "POST", s.URL+"/v1/sessions", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Retry-After"), b
}

// waitPoolRefused waits until host admission has refused the pool of s a
// refill (the refiller is woken every PoolRetry).
func waitPoolRefused(t *testing.T, s *Server) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for s.metric(t, `chaser_host_admission_refusals_total{who="pool"}`) < 1 {
		if time.Now().After(deadline) {
			t.Fatal("the pool was never held back by host admission")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// sandboxDirs lists the sandboxes on the host of s (runc's state dirs:
// sessions' and pooled ones).
func sandboxDirs(s *Server) []string {
	dirs, _ := filepath.Glob(filepath.Join(s.DataDir, "sandboxes", "[sp]-*"))
	return dirs
}

// TestHostAdmission: a server allowed 4 sandboxes host-wide (config
// host.max_sandboxes) with a warm pool of 2 per tier: the pool stops at its
// share (4 less a headroom of 1), four creates of a paid account (whose
// tier allows 20) are all 201 — the pool yields what they need — the fifth
// is 429 with an integer Retry-After and leaves nothing, and after the
// deletes nothing is left and the pool refills to its share.
func TestHostAdmission(t *testing.T) {
	cfg := writeConfig(t, "host: {max_sandboxes: 4}\n")
	s := newServer(t, "--config", cfg, "--pool-size", "2")
	s.waitPool(t, 3)
	// It stays there: the refiller is refused.
	waitPoolRefused(t, s)
	if n := s.metric(t, "chaser_pool_sandboxes"); n != 3 {
		t.Fatalf("pool has %v sandboxes, want its share 3", n)
	}
	key := s.account(t, api.TierPaid)
	var ids []string
	for i := range 4 {
		code, ra, b := createRaw(t, s, key, `{"ephemeral":true}`)
		if code != 201 {
			t.Fatalf("create %d: %d (Retry-After %q) %s\n%s", i+1, code, ra, b, s.Log())
		}
		var sess api.Session
		decodeJSON(t, b, &sess)
		ids = append(ids, sess.ID)
		if n := len(sandboxDirs(s)); n > 4 {
			t.Fatalf("after create %d the host holds %d sandboxes, over its 4", i+1, n)
		}
	}
	if y := s.metric(t, "chaser_pool_yields_total"); y < 1 {
		t.Errorf("pool yields = %v, want at least 1 (the creates needed its slots)", y)
	}
	before := sandboxDirs(s)
	code, ra, b := createRaw(t, s, key, `{"ephemeral":true}`)
	if code != 429 || !strings.Contains(string(b), "resource_exhausted") || !strings.Contains(string(b), "host.max_sandboxes") {
		t.Fatalf("fifth create: %d %s, want 429 resource_exhausted naming host.max_sandboxes", code, b)
	}
	if secs, err := strconv.Atoi(ra); err != nil || secs < 1 {
		t.Fatalf("Retry-After %q, want whole seconds", ra)
	}
	if after := sandboxDirs(s); len(after) != len(before) {
		t.Errorf("the refused create changed the host's sandboxes: %v → %v", before, after)
	}
	list, err := s.Client(key).ListSessions(t.Context())
	if err != nil || len(list) != 4 {
		t.Fatalf("sessions after the refusal: %d %v, want 4", len(list), err)
	}
	if n := s.metric(t, "chaser_pool_sandboxes"); n != 0 {
		t.Errorf("pool holds %v sandboxes on a full host, want 0", n)
	}
	var all []string
	for _, d := range sandboxDirs(s) {
		all = append(all, filepath.Base(d))
	}
	for _, id := range ids {
		if err := s.Client(key).DeleteSession(context.Background(), id); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range append(all, ids...) {
		if strings.HasPrefix(id, "p-") && !strings.Contains(s.Log(), "sandbox="+id) {
			continue // still pooled: not one of the deleted
		}
		if left := s.leaks(t, id); len(left) > 0 {
			t.Errorf("sandbox %s left after its delete: %v", id, left)
		}
	}
	s.waitPool(t, 3)
}

// TestHostAdmissionMemory: a server whose memory reserve is above what the
// host has refuses every create 429 with Retry-After, makes nothing, and
// its pool never fills.
func TestHostAdmissionMemory(t *testing.T) {
	cfg := writeConfig(t, "host: {min_free_memory_mb: 100000000}\n")
	s := newServer(t, "--config", cfg, "--pool-size", "1")
	key := s.account(t, api.TierFree)
	code, ra, b := createRaw(t, s, key, `{"ephemeral":true}`)
	if code != 429 || !strings.Contains(string(b), "low on memory") {
		t.Fatalf("create: %d %s, want 429 low on memory", code, b)
	}
	if secs, err := strconv.Atoi(ra); err != nil || secs < 1 {
		t.Fatalf("Retry-After %q, want whole seconds", ra)
	}
	waitPoolRefused(t, s)
	if n := s.metric(t, "chaser_pool_sandboxes"); n != 0 {
		t.Errorf("pool holds %v sandboxes below the memory reserve", n)
	}
	if dirs := sandboxDirs(s); len(dirs) > 0 {
		t.Errorf("sandboxes made below the memory reserve: %v", dirs)
	}
	if _, err := os.Stat(filepath.Join(s.DataDir, "disks")); err == nil {
		if d, _ := os.ReadDir(filepath.Join(s.DataDir, "disks")); len(d) > 0 {
			t.Errorf("disks left: %d", len(d))
		}
	}
}

// TestSchedulingWeights: the sandboxes' parent cgroup gets
// host.sandboxes_cpu_shares (default 2048 per core) and the server runs at
// host.server_nice (default -5), while a sandbox's agent and commands run
// at nice 0 (they would inherit the server's through runc); a config file
// sets both, 0 leaves the parent at the kernel's weight.
func TestSchedulingWeights(t *testing.T) {
	if testRuntime != "runc" {
		t.Skip("checks runc's cgroup parent")
	}
	if _, err := os.Stat("/sys/fs/cgroup/cpu/cpu.shares"); err != nil {
		t.Skip("no cgroup v1 cpu controller here")
	}
	if self, _ := os.ReadFile("/proc/self/cgroup"); !strings.Contains("\n"+string(self), ":cpu:/\n") && !strings.Contains(string(self), ",cpu:/\n") && !strings.Contains(string(self), ":cpu,cpuacct:/\n") {
		t.Skip("the test does not run in the root CPU cgroup: the server leaves the weight alone there")
	}
	for _, tc := range []struct {
		name, config string
		shares, nice int
	}{
		{"defaults", "", 2048 * runtime.NumCPU(), -5},
		{"config", "host: {sandboxes_cpu_shares: 3000, server_nice: -2}\n", 3000, -2},
		{"off", "host: {sandboxes_cpu_shares: 0, server_nice: 0}\n", 1024, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var args []string
			if tc.config != "" {
				args = []string{"--config", writeConfig(t, tc.config)}
			}
			s := newServer(t, args...)
			key := s.account(t, "free")
			id := s.sandbox(t, key)
			raw, err := os.ReadFile(filepath.Join("/sys/fs/cgroup/cpu", daemon.CgroupParent(s.DataDir), "cpu.shares"))
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := strconv.Atoi(strings.TrimSpace(string(raw))); got != tc.shares {
				t.Errorf("sandboxes' cpu.shares = %d, want %d", got, tc.shares)
			}
			// Every thread of the server.
			tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", s.Cmd.Process.Pid))
			for _, task := range tasks {
				stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", s.Cmd.Process.Pid, task.Name()))
				if err != nil {
					continue // exited meanwhile
				}
				f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
				if nice, _ := strconv.Atoi(f[16]); nice != tc.nice {
					t.Errorf("server thread %s at nice %d, want %d", task.Name(), nice, tc.nice)
				}
			}
			// In the sandbox: the agent (pid 1, every thread) and a command.
			out := s.run(t, key, id, "cat /proc/1/task/*/stat | awk '{print $19}' | sort -u; awk '{print $19}' /proc/self/stat")
			if got := strings.Fields(out); len(got) != 2 || got[0] != "0" || got[1] != "0" {
				t.Errorf("nice values in the sandbox (agent's threads, then a command's): %q, want 0 and 0", out)
			}
		})
	}
}
