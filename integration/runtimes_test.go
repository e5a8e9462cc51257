package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/daemon"
)

// TestRuntimePerTier runs free sessions under gVisor and paid ones under
// runc in one server (--tier-runtime free=runsc), and checks that each
// session says and keeps its runtime: through a crash and restart, whose
// recovery must reattach each sandbox under its own runtime and release
// neither as the other's leftover; then a graceful stop leaves nothing.
func TestRuntimePerTier(t *testing.T) {
	s := newServer(t, "--runtime", "runc", "--tier-runtime", "free=runsc")
	want := map[string]struct{ runtime, platform string }{
		"free": {"runsc", "systrap"},
		"paid": {"runc", ""},
	}
	ids := map[string]string{}
	keys := map[string]string{}
	for tier, w := range want {
		keys[tier] = s.account(t, tier)
		c := s.Client(keys[tier])
		sess, err := c.CreateSession(t.Context(), api.CreateSessionRequest{Type: "sandbox", Ephemeral: true})
		if err != nil {
			t.Fatal(err)
		}
		if sess.Runtime != w.runtime {
			t.Fatalf("%s session runtime = %q, want %q", tier, sess.Runtime, w.runtime)
		}
		ids[tier] = sess.ID
		st, err := c.SelfTest(t.Context(), sess.ID)
		if err != nil || st.Runtime != w.runtime || st.Platform != w.platform || st.Env["CHASER_RUNTIME"] != w.runtime {
			t.Fatalf("%s self-test: runtime %q platform %q env %q, %v; want %s %q", tier, st.Runtime, st.Platform, st.Env["CHASER_RUNTIME"], err, w.runtime, w.platform)
		}
		if _, err := c.Exec(t.Context(), sess.ID, api.ExecRequest{Command: "echo " + tier + " > /workspace/state"}); err != nil {
			t.Fatal(err)
		}
	}
	// gVisor's kernel is not the host's: the two sandboxes see different
	// kernels, which shows each really runs where its session says.
	kernels := map[string]string{}
	for tier, id := range ids {
		res, err := s.Client(keys[tier]).Exec(t.Context(), id, api.ExecRequest{Command: "uname -r"})
		if err != nil {
			t.Fatal(err)
		}
		kernels[tier] = res.Stdout
	}
	if kernels["free"] == kernels["paid"] {
		t.Fatalf("runsc and runc sandboxes report the same kernel %q", kernels["free"])
	}
	s.kill()

	s2 := startServer(t, s.DataDir, "--runtime", "runc", "--tier-runtime", "free=runsc")
	defer s2.stop()
	for tier, id := range ids {
		c := s2.Client(keys[tier])
		sess, err := c.GetSession(t.Context(), id)
		if err != nil || sess.Status != api.StatusRunning || sess.Runtime != want[tier].runtime {
			t.Fatalf("%s session after restart = %+v, %v\n%s", tier, sess, err, s2.Log())
		}
		res, err := c.Exec(t.Context(), id, api.ExecRequest{Command: "cat /workspace/state; uname -r"})
		if err != nil || res.Stdout != tier+"\n"+kernels[tier] {
			t.Fatalf("%s after SIGKILL and restart: %+v %v\n%s", tier, res, err, s2.Log())
		}
	}
	if err := s2.stop(); err != nil {
		t.Fatalf("graceful stop: %v\n%s", err, s2.Log())
	}
	for _, id := range ids {
		if left := s2.leaks(t, id); len(left) > 0 {
			t.Fatalf("left after graceful stop: %v", left)
		}
	}
	if m := hostMounts(t, s.DataDir); len(m) > 0 {
		t.Fatalf("mounts left under the data dir: %v", m)
	}
	parent := daemon.CgroupParent(s.DataDir)
	if cgs, _ := filepath.Glob("/sys/fs/cgroup/*/" + parent + "*"); len(cgs) > 0 {
		t.Fatalf("cgroup parents left after graceful stop: %v", cgs)
	}
}

// TestRunscMissing checks that a server asked for runsc that it cannot
// find, or that is too old (no systrap), refuses to start and says how to
// install the right one.
func TestRunscMissing(t *testing.T) {
	old := filepath.Join(t.TempDir(), "runsc")
	// Debian's 2022 runsc knows no "help platforms" topic.
	if err := os.WriteFile(old, []byte("#!/bin/sh\necho 'runsc: unknown command' >&2\nexit 2\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"missing", []string{"--runtime", "runsc", "--runsc", "/nonexistent/runsc"}, "is not installed"},
		{"too old", []string{"--runtime", "runsc", "--runsc", old}, "too old"},
		{"tier", []string{"--tier-runtime", "free=runsc", "--runsc", old}, "too old"},
		{"bad tier", []string{"--tier-runtime", "gold=runsc"}, "unknown tier"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.CommandContext(t.Context(), binary, append([]string{"serve", "--addr", "127.0.0.1:0", "--data-dir", t.TempDir()}, tc.args...)...)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("serve %v started:\n%s", tc.args, out)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Fatalf("serve %v: %s; want it to say %q", tc.args, out, tc.want)
			}
			if tc.name != "bad tier" && !strings.Contains(string(out), "go install gvisor.dev/gvisor/runsc@v0.0.0-") {
				t.Fatalf("serve %v: %s; want the install command", tc.args, out)
			}
		})
	}
}
