package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chaserhq/chaser/api"
)

// TestCreateRunsNoRuntimeState creates a runc sandbox and runs its first
// command with every runc call the server makes logged (a runc on PATH
// that records its arguments), and checks that none was `runc state`: the
// exit watch of a new session used to ask it for the sandbox's pid, a Go
// binary's start beside the first command; the pid file runc wrote says
// the same.
func TestCreateRunsNoRuntimeState(t *testing.T) {
	if testRuntime != "runc" {
		t.Skipf("the sandboxes run under %s: this test counts runc's calls", testRuntime)
	}
	real, err := exec.LookPath("runc")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	calls := filepath.Join(dir, "calls")
	wrapper := "#!/bin/sh\necho \"$*\" >>" + calls + "\nexec " + real + " \"$@\"\n"
	if err := os.WriteFile(filepath.Join(dir, "runc"), []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+":"+os.Getenv("PATH"))
	s := newServer(t, "--health-interval", "1h")
	key := s.account(t, api.TierFree)
	c := s.Client(key)
	start, _ := os.ReadFile(calls) // what recovery at start ran
	sess, err := c.CreateSession(t.Context(), api.CreateSessionRequest{Type: "sandbox", Ephemeral: true})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := c.Exec(t.Context(), sess.ID, api.ExecRequest{Command: "true"}); err != nil || res.ExitCode != 0 {
		t.Fatalf("first command: %+v %v", res, err)
	}
	time.Sleep(200 * time.Millisecond) // the watch starts beside the answer
	all, _ := os.ReadFile(calls)
	during := strings.TrimSpace(string(all[len(start):]))
	if !strings.Contains(during, " run ") {
		t.Fatalf("the wrapper did not see the create's runc run; calls:\n%s", during)
	}
	for _, line := range strings.Split(during, "\n") {
		if f := strings.Fields(line); len(f) > 2 && f[2] == "state" {
			t.Fatalf("create + first command ran %q; calls:\n%s", line, during)
		}
	}
}
