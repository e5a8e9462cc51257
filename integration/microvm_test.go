package integration

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/image/imagetest"
	"github.com/chaserhq/chaser/internal/runtime/vm"
)

// TestMicroVM runs sessions as QEMU microVMs (serve --runtime microvm, TCG
// here) on a busybox OCI image, and checks from outside, on one VM: that it
// runs the guest kernel scripts/microvm.sh built; that exec, files, a
// terminal, a port forward and the self-test work through the agent's
// serial session; that the guest holds the session's process limit (a
// fork bomb gets 429); that QEMU runs as an unprivileged uid under
// seccomp; that a killed server's successor finds the VM again and talks
// to it; that deleting the session leaves no QEMU, socket or disk; and
// that removing the image collects its base disk.
func TestMicroVM(t *testing.T) {
	kernel := guestKernel(t)
	reg := imagetest.StartRegistry(t)
	ref := reg.Push(t, "test/busybox:vm", imagetest.Image(t, v1.Config{Env: []string{"PATH=/bin"}}, imagetest.BusyboxLayer(t)))
	args := []string{"--runtime", "microvm", "--default-image", ref, "--allow-registry", reg.Host}
	s := newServer(t, args...)
	key := s.account(t, "paid")
	c := s.Client(key)
	pids := int64(48)
	sess, err := c.CreateSession(t.Context(), api.CreateSessionRequest{Type: "sandbox", Ephemeral: true, Resources: &api.ResourceRequest{Pids: &pids}})
	if err != nil {
		t.Fatalf("create: %v\n%s", err, s.Log())
	}
	if sess.Runtime != "microvm" {
		t.Fatalf("session runtime = %q", sess.Runtime)
	}
	// The host image has no layers to boot: refused, nothing made.
	status, body := s.do(t, key, "POST", "/v1/sessions", `{"type":"sandbox","ephemeral":true,"image":"host"}`)
	expectError(t, status, body, 400, "invalid_argument")
	st, err := c.SelfTest(t.Context(), sess.ID)
	if err != nil || st.Runtime != "microvm" || (st.Platform != "tcg" && st.Platform != "kvm") || st.SessionID != sess.ID || st.Kernel == "" {
		t.Fatalf("self-test: %+v, %v", st, err)
	}
	res, err := c.Exec(t.Context(), sess.ID, api.ExecRequest{Command: "uname -r; echo kept > /workspace/f; cat /workspace/f"})
	if err != nil || res.Stdout != kernel+"\nkept\n" {
		t.Fatalf("uname -r in the VM = %+v, %v; want the guest kernel %s", res, err, kernel)
	}
	local := filepath.Join(t.TempDir(), "g")
	if err := os.WriteFile(local, []byte("through the files API\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := s.cli(t, key, nil, "upload", sess.ID, local, "/workspace/g"); out.Code != 0 {
		t.Fatalf("upload: %+v", out)
	}
	back := filepath.Join(t.TempDir(), "back")
	if out := s.cli(t, key, nil, "download", sess.ID, "/workspace/g", back); out.Code != 0 {
		t.Fatalf("download: %+v", out)
	}
	if b, err := os.ReadFile(back); err != nil || string(b) != "through the files API\n" {
		t.Fatalf("downloaded %q, %v", b, err)
	}

	// A terminal: keystrokes in, their output back.
	w := s.dialWS(t, key, sess.ID, url.Values{"cols": {"90"}, "rows": {"30"}})
	w.untilOutput("#")
	w.keys("stty size; echo $((6*7))\r")
	if out := w.untilOutput("42\r\n"); !strings.Contains(out, "30 90") {
		t.Errorf("terminal output %q lacks the size 30 90", out)
	}
	w.keys("exit 0\r")
	w.until("exit")

	// A port forward reaches a server in the VM (busybox httpd on the
	// guest's loopback), dialled by the agent over the serial session.
	if res, err := c.Exec(t.Context(), sess.ID, api.ExecRequest{Command: "mkdir -p /tmp/www && echo hello from the vm > /tmp/www/hello.txt"}); err != nil || res.ExitCode != 0 {
		t.Fatalf("web root: %+v, %v", res, err)
	}
	if _, err := c.StartBackground(t.Context(), sess.ID, api.ExecRequest{Command: "exec httpd -f -p 127.0.0.1:8080 -h /tmp/www"}); err != nil {
		t.Fatal(err)
	}
	var fbody string
	waitVM(t, func() bool {
		var resp *http.Response
		resp, fbody = fwd(t, s, "GET", "", "/s/"+sess.ID+"/forward/8080/hello.txt", key, nil)
		return resp.StatusCode == 200
	})
	if fbody != "hello from the vm\n" {
		t.Fatalf("forwarded body %q", fbody)
	}

	// The process limit holds inside the guest: a fork bomb fills the
	// session's pids (the agent's cgroup in the guest) and exec answers
	// 429 until it is killed.
	if res, err := c.Exec(t.Context(), sess.ID, api.ExecRequest{Command: "cat /proc/self/cgroup"}); err != nil || res.Stdout != "0::/sandbox\n" {
		t.Fatalf("cgroup of a command in the guest: %+v, %v", res, err)
	}
	// A non-interactive busybox sh exits when it cannot fork, freeing its
	// slot (a loop restarting it raced the polls below for that slot and,
	// on a loaded host, lost it for good: CI failed so). An interactive
	// one reports the error and reads the next line, so it holds its slot
	// and takes back any the polls free.
	bomb, err := c.StartBackground(t.Context(), sess.ID, api.ExecRequest{Command: "yes 'while :; do sleep 600 & done' | sh -i >/dev/null 2>&1"})
	if err != nil {
		t.Fatal(err)
	}
	waitVM(t, func() bool {
		resp, body := fwd(t, s, "POST", "", "/v1/sessions/"+sess.ID+"/exec", key, strings.NewReader(`{"command":"true"}`), "Content-Type", "application/json")
		if resp.StatusCode != 200 && resp.StatusCode != 429 {
			t.Fatalf("exec during the fork bomb: %d %s", resp.StatusCode, body)
		}
		return resp.StatusCode == 429
	})
	if err := c.Signal(t.Context(), sess.ID, bomb, "KILL"); err != nil {
		t.Fatal(err)
	}
	waitVM(t, func() bool {
		res, err := c.Exec(t.Context(), sess.ID, api.ExecRequest{Command: "true"}) // the signal went to the bomb's process group
		return err == nil && res.ExitCode == 0
	})

	// QEMU confines itself: an unprivileged uid of its own, seccomp on.
	qemu := qemuOf(t, s.DataDir)
	status1 := procStatus(t, qemu)
	if uid := strings.Fields(status1["Uid"]); len(uid) == 0 || uid[0] == "0" || status1["Seccomp"] != "2" {
		t.Fatalf("QEMU %d runs with Uid %q Seccomp %q; want an unprivileged uid and seccomp filter mode 2", qemu, status1["Uid"], status1["Seccomp"])
	}
	// And at the host's default priority, not the server's raised one
	// (host.server_nice): its vCPUs are the tenant's.
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", qemu))
	for _, task := range tasks {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", qemu, task.Name()))
		if err != nil {
			continue // exited meanwhile
		}
		if f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:])); f[16] != "0" {
			t.Errorf("QEMU %d thread %s runs at nice %s, want 0", qemu, task.Name(), f[16])
		}
	}

	// A killed server: its successor reconnects to the VM's serial socket
	// and the guest starts a new session for it.
	s.kill()
	s2 := startServer(t, s.DataDir, args...)
	defer s2.stop()
	c = s2.Client(key)
	res, err = c.Exec(t.Context(), sess.ID, api.ExecRequest{Command: "cat /workspace/f"})
	if err != nil || res.Stdout != "kept\n" {
		t.Fatalf("after SIGKILL and restart: %+v, %v\n%s", res, err, s2.Log())
	}
	if err := c.DeleteSession(t.Context(), sess.ID); err != nil {
		t.Fatal(err)
	}
	if left := s2.leaks(t, sess.ID); len(left) > 0 {
		t.Fatalf("left after delete: %v", left)
	}
	if out, _ := exec.Command("pgrep", "-f", "qemu-system.*"+s.DataDir).Output(); len(out) > 0 {
		t.Fatalf("QEMU left: %s", out)
	}

	// Removing the image collects its base disk with its layers.
	disks := func() []string {
		m, _ := filepath.Glob(filepath.Join(s.DataDir, "microvm", "base-*"))
		return m
	}
	if len(disks()) == 0 {
		t.Fatal("no base disk was built")
	}
	if out := s2.cli(t, s2.AdminKey, nil, "images", "rm", ref); out.Code != 0 {
		t.Fatalf("images rm: %+v", out)
	}
	if d := disks(); len(d) > 0 {
		t.Fatalf("base disks left after the image was removed: %v", d)
	}
}

// TestMicroVMWorkspace: a workspace keeps its VM's writable disk between
// sessions (two VMs, one after the other).
func TestMicroVMWorkspace(t *testing.T) {
	guestKernel(t)
	reg := imagetest.StartRegistry(t)
	ref := reg.Push(t, "test/busybox:ws", imagetest.Image(t, v1.Config{Env: []string{"PATH=/bin"}}, imagetest.BusyboxLayer(t)))
	s := newServer(t, "--runtime", "microvm", "--default-image", ref, "--allow-registry", reg.Host)
	key := s.account(t, "paid")
	c := s.Client(key)
	if _, err := c.CreateWorkspace(t.Context(), api.CreateWorkspaceRequest{Name: "vm", SessionType: "sandbox"}); err != nil {
		t.Fatal(err)
	}
	first, err := c.CreateSession(t.Context(), api.CreateSessionRequest{Type: "sandbox", Workspace: "vm"})
	if err != nil {
		t.Fatalf("create: %v\n%s", err, s.Log())
	}
	if res, err := c.Exec(t.Context(), first.ID, api.ExecRequest{Command: "echo data > /workspace/file && mkdir -p /usr/local/bin && echo tool > /usr/local/bin/t"}); err != nil || res.ExitCode != 0 {
		t.Fatalf("write: %+v, %v", res, err)
	}
	if err := c.DeleteSession(t.Context(), first.ID); err != nil {
		t.Fatal(err)
	}
	if out, _ := exec.Command("pgrep", "-f", "qemu-system.*"+first.ID).Output(); len(out) > 0 {
		t.Fatalf("QEMU of the ended session left: %s", out)
	}
	second, err := c.CreateSession(t.Context(), api.CreateSessionRequest{Type: "sandbox", Workspace: "vm"})
	if err != nil || second.ID == first.ID {
		t.Fatalf("resume: %+v, %v", second, err)
	}
	res, err := c.Exec(t.Context(), second.ID, api.ExecRequest{Command: "cat /workspace/file /usr/local/bin/t"})
	if err != nil || res.Stdout != "data\ntool\n" {
		t.Fatalf("the workspace in its second VM: %+v, %v", res, err)
	}
	if err := c.DeleteSession(t.Context(), second.ID); err != nil {
		t.Fatal(err)
	}
}

// guestKernel returns the version of the guest kernel scripts/microvm.sh
// built (scripts/test.sh builds it), failing the test without one.
func guestKernel(t *testing.T) string {
	t.Helper()
	version, err := os.ReadFile(filepath.Join(vm.DefaultKernelDir, "version"))
	if err != nil {
		t.Fatalf("no guest kernel: build it with %s: %v", vm.KernelSetup, err)
	}
	return strings.Fields(string(version))[0]
}

// qemuOf returns the pid of the one QEMU whose command line names dir.
func qemuOf(t *testing.T, dir string) int {
	t.Helper()
	out, _ := exec.Command("pgrep", "-f", "qemu-system.*"+dir).Output()
	f := strings.Fields(string(out))
	if len(f) != 1 {
		t.Fatalf("QEMU processes of %s: %q, want one", dir, out)
	}
	pid, _ := strconv.Atoi(f[0])
	return pid
}

// procStatus returns the fields of /proc/PID/status.
func procStatus(t *testing.T, pid int) map[string]string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}

// TestMicroVMRefusesHostImage: the host image has no layers to make a
// disk of, so serve refuses microvm with it as the default, naming the fix.
func TestMicroVMRefusesHostImage(t *testing.T) {
	for _, args := range [][]string{{"--runtime", "microvm"}, {"--tier-runtime", "free=microvm"}} {
		cmd := exec.CommandContext(t.Context(), binary, append([]string{"serve", "--addr", "127.0.0.1:0", "--data-dir", t.TempDir()}, args...)...)
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "runs OCI images only") || !strings.Contains(string(out), "--default-image") {
			t.Fatalf("serve %v: %v: %s; want a refusal naming --default-image", args, err, out)
		}
	}
}

// TestMicroVMPool: the warm pool serves microVM sessions too. The paid
// tier runs microvm, the free one runc (the pool of --pool-size is the
// default runtime's: one warm VM, for paid); a paid session is claimed
// from the pool with its own identity in the guest, in far less than a boot; after a SIGKILL the
// next server removes the unclaimed warm VM.
func TestMicroVMPool(t *testing.T) {
	kernel := guestKernel(t)
	reg := imagetest.StartRegistry(t)
	ref := reg.Push(t, "test/busybox:pool", imagetest.Image(t, v1.Config{Env: []string{"PATH=/bin"}}, imagetest.BusyboxLayer(t)))
	s := newServer(t, "--runtime", "microvm", "--tier-runtime", "free=runc", "--pool-size", "1", "--default-image", ref, "--allow-registry", reg.Host)
	// A TCG boot on a loaded host takes longer than waitPool allows.
	deadline := time.Now().Add(3 * time.Minute)
	for s.metric(t, "chaser_pool_sandboxes") != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("the pool did not fill in 3 minutes\n%s", s.Log())
		}
		time.Sleep(200 * time.Millisecond)
	}
	key := s.account(t, "paid")
	c := s.Client(key)
	start := time.Now()
	sess, err := c.CreateSession(t.Context(), api.CreateSessionRequest{Type: "sandbox", Ephemeral: true})
	if err != nil {
		t.Fatalf("create: %v\n%s", err, s.Log())
	}
	claim := time.Since(start)
	if got := s.metric(t, "chaser_pool_hits_total"); got != 1 || sess.Runtime != "microvm" {
		t.Fatalf("pool hits %v, runtime %q: want a claimed microVM", got, sess.Runtime)
	}
	res, err := c.Exec(t.Context(), sess.ID, api.ExecRequest{Command: "echo $CHASER_SESSION_ID; uname -r"})
	if err != nil || res.Stdout != sess.ID+"\n"+kernel+"\n" {
		t.Fatalf("in the claimed VM: %+v, %v; want its session id and the guest kernel", res, err)
	}
	t.Logf("create from the pool (claim + agent init): %v", claim)
	var rtts []time.Duration
	for range 15 {
		start := time.Now()
		if res, err := c.Exec(t.Context(), sess.ID, api.ExecRequest{Command: "true"}); err != nil || res.ExitCode != 0 {
			t.Fatalf("exec true: %+v, %v", res, err)
		}
		rtts = append(rtts, time.Since(start))
	}
	slices.Sort(rtts)
	t.Logf("exec round trip of true through the API: median %v, best %v", rtts[len(rtts)/2], rtts[0])
	if err := c.DeleteSession(t.Context(), sess.ID); err != nil {
		t.Fatal(err)
	}
	// The pool refills; a SIGKILLed server leaves its warm VM behind, and
	// its successor (no pool) finds it and removes it.
	for s.metric(t, "chaser_pool_sandboxes") != 1 {
		if time.Now().After(deadline.Add(3 * time.Minute)) {
			t.Fatalf("the pool did not refill\n%s", s.Log())
		}
		time.Sleep(200 * time.Millisecond)
	}
	s.kill()
	if out, _ := exec.Command("pgrep", "-f", "qemu-system.*"+s.DataDir).Output(); len(out) == 0 {
		t.Fatal("no warm VM survived the SIGKILL: nothing to recover")
	}
	s2 := startServer(t, s.DataDir, "--runtime", "microvm", "--tier-runtime", "free=runc", "--pool-size", "0", "--default-image", ref, "--allow-registry", reg.Host)
	defer s2.stop()
	waitVM(t, func() bool {
		out, _ := exec.Command("pgrep", "-f", "qemu-system.*"+s.DataDir).Output()
		return len(out) == 0
	})
	if left, _ := filepath.Glob(filepath.Join(s.DataDir, "sandboxes-microvm", "p-*")); len(left) > 0 {
		t.Fatalf("state of released VMs left: %v", left)
	}
}

// waitVM is waitFor with room for a TCG guest on a loaded host.
func waitVM(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 2 minutes")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
