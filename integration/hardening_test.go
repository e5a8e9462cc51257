package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/agent"
)

// ptracePy attaches to the pid in argv[1] with ptrace(PTRACE_ATTACH) and
// prints "ok" or the errno's name. On success it waits for the stop and
// detaches, so a tracee is never left frozen.
const ptracePy = `
import ctypes, errno, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
pid = int(sys.argv[1])
if libc.ptrace(16, pid, None, None) != 0:
    print(errno.errorcode[ctypes.get_errno()])
    sys.exit(0)
os.waitpid(pid, 0x40000000)
libc.ptrace(17, pid, None, None)
print("ok")
`

// TestAgentUnreachable checks that nothing in a sandbox can reach its
// agent (PID 1) through ptrace or /proc/1, that a write storm from inside
// leaves the host's agent.log within its cap, and that users can still
// debug their own processes.
func TestAgentUnreachable(t *testing.T) {
	s := sharedServer(t)
	key := s.account(t, "free")
	id := s.sandbox(t, key)
	c := s.Client(key)
	exec := func(cmd string) api.ExecResult {
		t.Helper()
		res, err := c.Exec(t.Context(), id, api.ExecRequest{Command: cmd, TimeoutMS: 60000})
		if err != nil {
			t.Fatalf("exec %q: %v", cmd, err)
		}
		return res
	}
	if res := exec("cat > /tmp/ptrace.py <<'EOF'\n" + ptracePy + "EOF\n"); res.ExitCode != 0 {
		t.Fatalf("write script: %+v", res)
	}

	t.Run("ptrace attach to PID 1 is refused", func(t *testing.T) {
		if res := exec("python3 /tmp/ptrace.py 1"); res.Stdout != "EPERM\n" {
			t.Errorf("PTRACE_ATTACH 1 gave %q (stderr %q), want EPERM", res.Stdout, res.Stderr)
		}
	})
	t.Run("/proc/1 of the agent is closed", func(t *testing.T) {
		for _, cmd := range []string{
			"ls -l /proc/1/fd",
			"readlink /proc/1/fd/1",
			"echo x > /proc/1/fd/1",
			"echo x > /proc/1/fd/2",
			"cat /proc/1/environ",
			"cat /proc/1/maps",
			"ls /proc/1/root/",
		} {
			res := exec(cmd + " && echo REACHED")
			if res.ExitCode == 0 || strings.Contains(res.Stdout, "REACHED") || strings.Contains(res.Stdout, "agent.log") {
				t.Errorf("%q: exit %d, stdout %q: want refused", cmd, res.ExitCode, res.Stdout)
			}
		}
	})
	t.Run("a write storm leaves agent.log within its cap", func(t *testing.T) {
		exec("for fd in 1 2; do head -c 52428800 /dev/zero > /proc/1/fd/$fd; done 2>/dev/null; true")
		log := filepath.Join(s.DataDir, "sandboxes", id, "agent.log")
		fi, err := os.Stat(log)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() > agent.LogLimit {
			t.Errorf("agent.log is %d bytes after a write storm, cap %d", fi.Size(), agent.LogLimit)
		}
		if b, _ := os.ReadFile(log); !strings.Contains(string(b), "agent serving") {
			t.Errorf("agent.log lost the agent's own lines: %.200q", b)
		}
	})
	t.Run("users still debug their own processes", func(t *testing.T) {
		if res := exec("sleep 30 & pid=$!; python3 /tmp/ptrace.py $pid; kill $pid"); res.Stdout != "ok\n" {
			t.Errorf("PTRACE_ATTACH to an own child gave %q (stderr %q), want ok", res.Stdout, res.Stderr)
		}
		if res := exec("strace -f -o /dev/null sh -c 'echo traced'"); res.Stdout != "traced\n" || res.ExitCode != 0 {
			t.Errorf("strace: %+v", res)
		}
		if res := exec("sleep 30 & pid=$!; gdb -batch -p $pid -ex 'info inferiors' 2>&1 | grep -q \"process $pid\" && echo attached; kill $pid"); res.Stdout != "attached\n" {
			t.Errorf("gdb -p of an own process: %+v", res)
		}
		if res := exec("ls -l /proc/self/fd/ >/dev/null && echo ok"); res.Stdout != "ok\n" {
			t.Errorf("a command's own /proc/self/fd: %+v", res)
		}
	})
}
