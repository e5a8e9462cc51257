package oci

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/chaserhq/chaser/internal/runtime"
	"github.com/chaserhq/chaser/internal/runtime/runtimetest"
	"github.com/chaserhq/chaser/internal/userns"
)

var testRemap = userns.Remap{Base: 100000, Size: 65536}

func newRemapped(t *testing.T) (*Runtime, string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: runc sandboxes need root")
	}
	if _, err := exec.LookPath("runc"); err != nil {
		t.Fatal("runc is not installed: apt-get install -y runc")
	}
	dir := t.TempDir()
	// The range's root must enter the state directory's parents (New
	// checks): the test's own temporary directories are 0700.
	for d := dir; d != os.TempDir(); d = filepath.Dir(d) {
		os.Chmod(d, 0o711)
	}
	rt, err := New(Config{Name: "runc", StateDir: filepath.Join(dir, "state"), RootDir: filepath.Join(dir, "runc"), CgroupParent: "chaser-test-userns", Remap: testRemap})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close() })
	return rt, dir
}

// TestConformanceRuncUserns runs the suite with root remapped to a host
// range (--userns-remap): the host image's /usr through an idmapped mount,
// overlays mounted on the host.
func TestConformanceRuncUserns(t *testing.T) {
	runtimetest.Run(t, func(t *testing.T) (runtime.Runtime, string) { return newRemapped(t) })
}

// TestUsernsRoot checks what the remap promises: the agent (root inside)
// is the range's base on the host, and root inside still writes where
// root writes, including into the host's /usr through copy-up, with the
// copies owned by the range and the host's /usr unchanged.
func TestUsernsRoot(t *testing.T) {
	rt, _ := newRemapped(t)
	id := "rt-userns"
	s := remappedSpec(t, id)
	s.Rootfs.UpperDir = filepath.Join(t.TempDir(), "upper")
	if err := rt.Create(t.Context(), s); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Delete(context.Background(), id) })
	pid, err := rt.PID(id)
	if err != nil {
		t.Fatal(err)
	}
	if uid := statusIDs(t, pid, "Uid:"); uid != fmt.Sprint(testRemap.Base) {
		t.Errorf("agent's host uid %s; want %d", uid, testRemap.Base)
	}
	if gid := statusIDs(t, pid, "Gid:"); gid != fmt.Sprint(testRemap.Base) {
		t.Errorf("agent's host gid %s; want %d", gid, testRemap.Base)
	}
	motd, _ := os.ReadFile("/usr/share/base-files/motd")
	out := runtimetest.Exec(t, rt, id, "(id -u; stat -c %u /usr/bin /etc/passwd; mkdir /usr/local/x && echo z >> /usr/share/base-files/motd && echo p >> /etc/passwd && chown 1000:1000 /usr/local/x && echo ok) 2>&1")
	if out != "0\n0\n0\nok\n" {
		t.Fatalf("inside: %q; want root, owning /usr/bin and /etc/passwd, and writing", out)
	}
	if after, _ := os.ReadFile("/usr/share/base-files/motd"); string(after) != string(motd) {
		t.Fatal("the host's /usr/share/base-files/motd changed")
	}
	for p, want := range map[string]uint32{
		"usr/upper/share/base-files/motd": testRemap.Base,
		"usr/upper/local/x":               testRemap.Base + 1000,
		"root/upper/etc/passwd":           testRemap.Base,
	} {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(s.Rootfs.UpperDir, p), &st); err != nil || st.Uid != want {
			t.Errorf("upper %s: owner %d, %v; want %d", p, st.Uid, err, want)
		}
	}
}

func remappedSpec(t *testing.T, id string) runtime.Spec {
	t.Helper()
	return runtimetest.Spec(t, testRemap, id)
}

// statusIDs returns the real id of the host's /proc/PID/status line key.
func statusIDs(t *testing.T, pid int, key string) string {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), key); ok {
			return strings.Fields(v)[0]
		}
	}
	t.Fatalf("no %s in /proc/%d/status", key, pid)
	return ""
}
