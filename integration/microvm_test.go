package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/image/imagetest"
	"github.com/chaserhq/chaser/internal/runtime/vm"
)

// TestMicroVM runs sessions as QEMU microVMs (serve --runtime microvm, TCG
// here) on a busybox OCI image, and checks from outside that they run the
// guest kernel scripts/microvm.sh built, that exec, files and the
// self-test work through the agent's serial session, that a killed
// server's successor finds the VM again and talks to it, and that deleting
// the session leaves no QEMU, socket or disk.
func TestMicroVM(t *testing.T) {
	version, err := os.ReadFile(filepath.Join(vm.DefaultKernelDir, "version"))
	if err != nil {
		t.Fatalf("no guest kernel: build it with %s: %v", vm.KernelSetup, err)
	}
	kernel := strings.Fields(string(version))[0]
	reg := imagetest.StartRegistry(t)
	ref := reg.Push(t, "test/busybox:vm", imagetest.Image(t, v1.Config{Env: []string{"PATH=/bin"}}, imagetest.BusyboxLayer(t)))
	args := []string{"--runtime", "microvm", "--default-image", ref, "--allow-registry", reg.Host}
	s := newServer(t, args...)
	key := s.account(t, "paid")
	c := s.Client(key)
	sess, err := c.CreateSession(t.Context(), api.CreateSessionRequest{Type: "sandbox", Ephemeral: true})
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
	if err != nil || st.Runtime != "microvm" || (st.Platform != "tcg" && st.Platform != "kvm") {
		t.Fatalf("self-test: runtime %q platform %q, %v", st.Runtime, st.Platform, err)
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
