package integration

import (
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/agent"
	"github.com/chaserhq/chaser/internal/image/imagetest"
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
		// Also as another user: the flag resets at execve whoever runs.
		if res := exec("setpriv --reuid 65534 --regid 65534 --clear-groups sh -c 'sleep 30 & pid=$!; python3 /tmp/ptrace.py $pid; kill $pid'"); res.Stdout != "ok\n" {
			t.Errorf("PTRACE_ATTACH to an own child as uid 65534 gave %q (stderr %q), want ok", res.Stdout, res.Stderr)
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

// countingListener is a TCP listener on loopback that counts the
// connections it accepts and closes them at once.
type countingListener struct {
	net.Listener
	n atomic.Int64
}

func listenCounting(t *testing.T) *countingListener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &countingListener{Listener: l}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			c.n.Add(1)
			conn.Close()
		}
	}()
	return c
}

// closedPort returns a loopback HOST:PORT nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// pullError pulls ref through the API and returns the error's status and
// message with host written as HOST, failing if the pull worked.
func pullError(t *testing.T, s *Server, key, ref, host string) (int, string) {
	t.Helper()
	status, b := s.do(t, key, "POST", "/v1/images", `{"ref":"`+ref+`"}`)
	var e api.ErrorBody
	if status == 200 || decodeJSONErr(b, &e) != nil {
		t.Fatalf("pull %s: %d %s: want a JSON error", ref, status, b)
	}
	return status, e.Error.Code + ": " + strings.ReplaceAll(e.Error.Message, host, "HOST")
}

func decodeJSONErr(b []byte, v *api.ErrorBody) error {
	if err := json.Unmarshal(b, v); err != nil {
		return err
	}
	if v.Error.Code == "" {
		return errors.New("no error code")
	}
	return nil
}

// TestImagePullNoSSRF checks that a pull cannot make the server reach
// loopback, private or its own addresses the operator did not list, nor
// tell an open port there from a closed one.
func TestImagePullNoSSRF(t *testing.T) {
	s := sharedServer(t)
	key := s.account(t, "free")
	open := listenCounting(t)
	closed := closedPort(t)
	for _, host := range []string{open.Addr().String(), "localhost:" + strings.Split(open.Addr().String(), ":")[1]} {
		t.Run(host, func(t *testing.T) {
			st1, msg1 := pullError(t, s, key, host+"/x:v1", host)
			st2, msg2 := pullError(t, s, key, closed+"/x:v1", closed)
			t.Logf("refused: %d %s", st1, msg1)
			if st1 != st2 || msg1 != msg2 {
				t.Errorf("an open port answers differently from a closed one:\nopen:   %d %s\nclosed: %d %s", st1, msg1, st2, msg2)
			}
			if st1 != 403 || !strings.Contains(msg1, "--allow-registry") {
				t.Errorf("refused pull: %d %s; want 403 naming --allow-registry", st1, msg1)
			}
		})
	}
	if n := open.n.Load(); n != 0 {
		t.Errorf("the unlisted loopback listener got %d connections", n)
	}
}

// TestImagePullAllowRegistry checks that registries the operator lists
// with --allow-registry are pulled from, and that a listed registry cannot
// redirect the server to an unlisted loopback port.
func TestImagePullAllowRegistry(t *testing.T) {
	reg := imagetest.StartRegistry(t)
	img := imagetest.Image(t, v1.Config{}, imagetest.BusyboxLayer(t))
	ref := reg.Push(t, "test/allowed:v1", img)
	target := listenCounting(t)
	// A registry that serves manifests from reg and redirects every blob
	// to the unlisted listener.
	up, _ := url.Parse("http://" + reg.Host)
	proxy := httputil.NewSingleHostReverseProxy(up)
	redir := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/blobs/") {
			http.Redirect(w, r, "http://"+target.Addr().String()+r.URL.Path, http.StatusTemporaryRedirect)
			return
		}
		proxy.ServeHTTP(w, r)
	})}
	rl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go redir.Serve(rl)
	t.Cleanup(func() { redir.Close() })
	redirHost := rl.Addr().String()

	s := newServer(t, "--allow-registry", reg.Host, "--allow-registry", redirHost)
	key := s.account(t, "free")
	t.Run("listed registry", func(t *testing.T) {
		if status, b := s.do(t, key, "POST", "/v1/images", `{"ref":"`+ref+`"}`); status != 200 {
			t.Fatalf("pull from a listed loopback registry: %d %s", status, b)
		}
		id := s.sandboxWithImage(t, key, ref)
		if out := run(t, s, key, id, "busybox echo pulled"); out != "pulled" {
			t.Errorf("sandbox of the pulled image: %q", out)
		}
	})
	t.Run("redirect to an unlisted port", func(t *testing.T) {
		status, msg := pullError(t, s, key, redirHost+"/test/allowed:v1", redirHost)
		if status != 403 || !strings.Contains(msg, "--allow-registry") || !strings.Contains(msg, target.Addr().String()) {
			t.Errorf("pull redirected to an unlisted port: %d %s; want 403 naming the target and --allow-registry", status, msg)
		}
		if n := target.n.Load(); n != 0 {
			t.Errorf("the redirect target got %d connections", n)
		}
	})
}

// sandboxWithImage creates an ephemeral session of ref and deletes it at
// the end of the test.
func (s *Server) sandboxWithImage(t *testing.T, key, ref string) string {
	t.Helper()
	status, b, id := createWithImage(t, s, key, ref)
	if status != 201 {
		t.Fatalf("create with %s: %d %s", ref, status, b)
	}
	return id
}
