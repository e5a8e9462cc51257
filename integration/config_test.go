package integration

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/image/imagetest"
)

// writeConfig writes an operator config file for a test server.
func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "chaser.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// cgroupLimits reads, from inside session id, its memory limit, CPU quota
// and period, and pids limit (cgroup v1 as the sandbox sees it).
func (s *Server) cgroupLimits(t *testing.T, key, id string) string {
	t.Helper()
	res, err := s.Client(key).Exec(t.Context(), id, api.ExecRequest{Command: "cat /sys/fs/cgroup/memory/memory.limit_in_bytes " +
		"/sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us /sys/fs/cgroup/pids/pids.max"})
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("read cgroup limits: %v %+v", err, res)
	}
	return strings.Join(strings.Fields(res.Stdout), " ")
}

func wantResources(t *testing.T, s api.Session, want api.Resources) {
	t.Helper()
	if s.Resources == nil || *s.Resources != want {
		t.Fatalf("session %s resources = %+v, want %+v", s.ID, s.Resources, want)
	}
}

// TestConfigFileTiersAndResources starts a server with a config file that
// lowers the free tier's maximums and the paid tier's sandbox count, and
// checks that sessions get the resources they ask for (in their cgroups),
// the file's defaults when they ask for none, 403 beyond the maximum, 400
// for malformed values, and that workspaces keep theirs.
func TestConfigFileTiersAndResources(t *testing.T) {
	cfg := writeConfig(t, `
tiers:
  free:
    max: {cpu: 0.5, memory_mb: 256}
  paid:
    max_sandboxes: 1
    max: {memory_mb: 1024}
network:
  subnet: 10.88.0.0/16
`)
	s := newServer(t, "--config", cfg)
	if log := s.Log(); strings.Contains(log, "setting=network.subnet") {
		t.Errorf("network.subnet is applied now, yet warned about:\n%s", log)
	}
	free := s.account(t, api.TierFree)
	fc := s.Client(free)

	t.Run("asked resources reach the cgroup", func(t *testing.T) {
		r := s.cli(t, free, nil, "sandbox", "--cpu", "0.25", "--memory", "128M", "--pids", "64", "--json")
		if r.Code != 0 {
			t.Fatalf("chaser sandbox: %d %s", r.Code, r.Stderr)
		}
		var sess api.Session
		decodeJSON(t, []byte(r.Stdout), &sess)
		defer fc.DeleteSession(context.Background(), sess.ID)
		wantResources(t, sess, api.Resources{CPU: 0.25, MemoryMB: 128, DiskMB: 1024, Pids: 64})
		if got, want := s.cgroupLimits(t, free, sess.ID), "134217728 25000 100000 64"; got != want {
			t.Fatalf("cgroup limits (memory, cpu quota, period, pids) = %q, want %q", got, want)
		}
		got, err := fc.GetSession(t.Context(), sess.ID)
		if err != nil {
			t.Fatal(err)
		}
		wantResources(t, got, *sess.Resources)
	})

	t.Run("the file's maximums lower the defaults", func(t *testing.T) {
		sess, err := fc.CreateSession(t.Context(), api.CreateSessionRequest{Type: "sandbox"})
		if err != nil {
			t.Fatal(err)
		}
		defer fc.DeleteSession(context.Background(), sess.ID)
		wantResources(t, sess, api.Resources{CPU: 0.5, MemoryMB: 256, DiskMB: 1024, Pids: 256})
		if got, want := s.cgroupLimits(t, free, sess.ID), "268435456 50000 100000 256"; got != want {
			t.Fatalf("cgroup limits = %q, want %q", got, want)
		}
	})

	t.Run("beyond the maximum is 403 naming the limit", func(t *testing.T) {
		for body, msg := range map[string]string{
			`{"resources":{"memory_mb":4096}}`:                "memory_mb 4096 is over the free tier's maximum of 256",
			`{"resources":{"cpu":1,"memory_mb":128}}`:         "cpu 1 is over the free tier's maximum of 0.5",
			`{"resources":{"pids":100000}}`:                   "pids 100000 is over the free tier's maximum of 256",
			`{"ephemeral":true,"resources":{"disk_mb":4096}}`: "disk_mb 4096 is over the free tier's maximum of 1024",
		} {
			status, b := s.do(t, free, "POST", "/v1/sessions", body)
			expectError(t, status, b, 403, "permission_denied")
			if !strings.Contains(string(b), msg) {
				t.Errorf("%s: %s, want the message %q", body, b, msg)
			}
		}
		if r := s.cli(t, free, nil, "sandbox", "--memory", "1G"); r.Code == 0 || !strings.Contains(r.Stderr, "memory_mb 1024 is over the free tier's maximum of 256") {
			t.Errorf("chaser sandbox --memory 1G: %d %q", r.Code, r.Stderr)
		}
		if list, err := fc.ListSessions(t.Context()); err != nil || len(list) != 0 {
			t.Fatalf("refused creates left sessions: %+v %v", list, err)
		}
	})

	t.Run("malformed is 400", func(t *testing.T) {
		for _, body := range []string{
			`{"resources":{"memory_mb":-1}}`, `{"resources":{"memory_mb":0}}`, `{"resources":{"memory_mb":1.5}}`,
			`{"resources":{"memory_mb":"512"}}`, `{"resources":{"cpu":0}}`, `{"resources":{"cpu":-0.5}}`,
			`{"resources":{"cpu":"x"}}`, `{"resources":{"pids":0}}`, `{"resources":{"disk_mb":-5}}`, `{"resources":"big"}`,
		} {
			status, b := s.do(t, free, "POST", "/v1/sessions", body)
			expectError(t, status, b, 400, "invalid_argument")
		}
		if r := s.cli(t, free, nil, "sandbox", "--memory", "lots"); r.Code == 0 || !strings.Contains(r.Stderr, "--memory") {
			t.Errorf("chaser sandbox --memory lots: %d %q", r.Code, r.Stderr)
		}
	})

	t.Run("network: none is what sandboxes of a tier without egress have; internet asked is refused", func(t *testing.T) {
		r := s.cli(t, free, nil, "sandbox", "--network", "none", "--json")
		if r.Code != 0 {
			t.Fatalf("chaser sandbox --network none: %d %s", r.Code, r.Stderr)
		}
		var sess api.Session
		decodeJSON(t, []byte(r.Stdout), &sess)
		defer fc.DeleteSession(context.Background(), sess.ID)
		if sess.Network == nil || sess.Network.Mode != api.NetworkNone {
			t.Fatalf("session network = %+v, want mode none", sess.Network)
		}
		status, b := s.do(t, free, "POST", "/v1/sessions", `{"network":{"mode":"internet"}}`)
		expectError(t, status, b, 403, "permission_denied") // the test server's --egress none
		status, b = s.do(t, free, "POST", "/v1/sessions", `{"network":{"mode":"some"}}`)
		expectError(t, status, b, 400, "invalid_argument")
		status, b = s.do(t, free, "POST", "/v1/sessions", `{"network":{"mode":"none","allow":["10.0.0.1"]}}`)
		expectError(t, status, b, 400, "invalid_argument")
	})

	t.Run("the paid tier's max_sandboxes", func(t *testing.T) {
		paid := s.account(t, api.TierPaid)
		pc := s.Client(paid)
		sess, err := pc.CreateSession(t.Context(), api.CreateSessionRequest{Type: "sandbox", Ephemeral: true})
		if err != nil {
			t.Fatal(err)
		}
		defer pc.DeleteSession(context.Background(), sess.ID)
		status, b := s.do(t, paid, "POST", "/v1/sessions", `{"ephemeral":true}`)
		expectError(t, status, b, 429, "resource_exhausted")
	})

	t.Run("a workspace keeps its resources", func(t *testing.T) {
		paid := s.account(t, api.TierPaid)
		pc := s.Client(paid)
		status, b := s.do(t, paid, "POST", "/v1/workspaces", `{"name":"big","resources":{"memory_mb":2048}}`)
		expectError(t, status, b, 403, "permission_denied")
		status, b = s.do(t, paid, "POST", "/v1/workspaces", `{"name":"bad","resources":{"pids":-1}}`)
		expectError(t, status, b, 400, "invalid_argument")
		status, b = s.do(t, paid, "POST", "/v1/workspaces", `{"name":"dev","resources":{"memory_mb":768,"cpu":1.5}}`)
		if status != 201 {
			t.Fatalf("create workspace: %d %s", status, b)
		}
		var ws api.Workspace
		decodeJSON(t, b, &ws)
		if ws.Resources == nil || ws.Resources.MemoryMB == nil || *ws.Resources.MemoryMB != 768 || ws.Resources.CPU == nil || *ws.Resources.CPU != 1.5 || ws.Resources.Pids != nil {
			t.Fatalf("workspace resources = %s", b)
		}
		status, b = s.do(t, paid, "POST", "/v1/sessions", `{"workspace":"dev","resources":{"memory_mb":512}}`)
		expectError(t, status, b, 400, "invalid_argument")
		want := api.Resources{CPU: 1.5, MemoryMB: 768, DiskMB: 10240, Pids: 1024}
		for i := range 2 { // every session on it
			sess, err := pc.CreateSession(t.Context(), api.CreateSessionRequest{Type: "sandbox", Workspace: "dev"})
			if err != nil {
				t.Fatal(err)
			}
			wantResources(t, sess, want)
			if got, want := s.cgroupLimits(t, paid, sess.ID), "805306368 150000 100000 1024"; got != want {
				t.Fatalf("session %d: cgroup limits = %q, want %q", i, got, want)
			}
			if err := pc.DeleteSession(t.Context(), sess.ID); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// TestConfigFileRefused: a config file with an unknown key or a bad value
// stops the server before it starts, naming the key (or setting) and the
// file.
func TestConfigFileRefused(t *testing.T) {
	for name, tt := range map[string]struct{ yaml, want string }{
		"unknown key": {"tiers:\n  free:\n    max_sandbox: 3\n", `line 3: unknown key "max_sandbox" in a tier`},
		"bad value":   {"tiers:\n  paid:\n    max: {memory_mb: 0}\n", "tiers.paid.max: memory_mb 0"},
		"bad default": {"tiers:\n  free:\n    defaults: {cpu: 2}\n", "tiers.free: defaults.cpu is over max.cpu (2 > 1)"},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := writeConfig(t, tt.yaml)
			dir := t.TempDir()
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, binary, "serve", "--addr", "127.0.0.1:0", "--data-dir", dir, "--config", cfg).CombinedOutput()
			if err == nil || ctx.Err() != nil {
				t.Fatalf("server started (or hung) with a bad config: %v\n%s", err, out)
			}
			if !strings.Contains(string(out), tt.want) || !strings.Contains(string(out), cfg) {
				t.Fatalf("output does not name %q and the file %s:\n%s", tt.want, cfg, out)
			}
			if _, err := os.Stat(filepath.Join(dir, "chaser.db")); err == nil {
				t.Fatal("the server opened its store before refusing the config")
			}
		})
	}
}

// TestConfigFileRegistries: the file's registries.allow lets pulls reach a
// loopback registry, and an --allow-registry flag adds to the list rather
// than replacing it.
func TestConfigFileRegistries(t *testing.T) {
	reg := imagetest.StartRegistry(t)
	ref := reg.Push(t, "test/fromfile:v1", imagetest.Image(t, v1.Config{}, imagetest.BusyboxLayer(t)))
	cfg := writeConfig(t, "registries:\n  allow: [\""+reg.Host+"\"]\n")
	s := newServer(t, "--config", cfg, "--allow-registry", "127.0.0.1:1")
	key := s.account(t, api.TierFree)
	if status, b := s.do(t, key, "POST", "/v1/images", `{"ref":"`+ref+`"}`); status != 200 {
		t.Fatalf("pull from a loopback registry the config file allows: %d %s", status, b)
	}
}
