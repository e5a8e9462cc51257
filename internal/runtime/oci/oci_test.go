//go:build linux

package oci

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/chaserhq/chaser/internal/runtime"
	"github.com/chaserhq/chaser/internal/runtime/runtimetest"
)

func TestConformanceRunc(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: runc sandboxes need root")
	}
	if _, err := exec.LookPath("runc"); err != nil {
		t.Fatal("runc is not installed: apt-get install -y runc")
	}
	runtimetest.Run(t, func(t *testing.T) (runtime.Runtime, string) {
		dir := t.TempDir()
		rt, err := New(Config{Name: "runc", StateDir: filepath.Join(dir, "state"), RootDir: filepath.Join(dir, "runc"), CgroupParent: "chaser-test"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rt.Close() })
		return rt, dir
	})
}

// TestConformanceRunsc runs the suite under gVisor: the runsc that the
// server would find (CHASER_RUNSC, PATH, then RunscCache).
func TestConformanceRunsc(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: runsc sandboxes need root")
	}
	runtimetest.Run(t, func(t *testing.T) (runtime.Runtime, string) {
		dir := t.TempDir()
		rt, err := New(Config{Name: "runsc", Binary: os.Getenv("CHASER_RUNSC"), StateDir: filepath.Join(dir, "state"), RootDir: filepath.Join(dir, "runsc"), CgroupParent: "chaser-test-runsc"})
		if err != nil {
			t.Fatal(err)
		}
		// runsc pins a network namespace per --root (ROOT/null-netns):
		// Delete leaves it to Close, which must leave no mount at all.
		t.Cleanup(func() {
			if err := rt.Close(); err != nil {
				t.Error(err)
			}
			if m := mountPointsUnder(dir); len(m) > 0 {
				t.Errorf("mounts left after Close: %v", m)
			}
		})
		return rt, filepath.Join(dir, "state")
	})
}

// TestCgroupRemnant checks that a cgroup left without its container (a
// failed start, a lost state dir) is listed for recovery and removed.
func TestCgroupRemnant(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: cgroups need root")
	}
	dir := t.TempDir()
	rt, err := New(Config{Binary: "runc", StateDir: filepath.Join(dir, "state"), RootDir: filepath.Join(dir, "runc"), CgroupParent: "chaser-test"})
	if err != nil {
		t.Fatal(err)
	}
	cg := "/sys/fs/cgroup/pids/chaser-test/rt-cgonly"
	if err := os.MkdirAll(cg, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(cg); rt.Close() })
	list, err := rt.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, in := range list {
		found = found || in.ID == "rt-cgonly" && in.State == runtime.Stopped
	}
	if !found {
		t.Fatalf("cgroup remnant not listed: %+v", list)
	}
	if err := rt.Delete(t.Context(), "rt-cgonly"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(cg); !os.IsNotExist(err) {
		t.Fatalf("cgroup remnant still there: %v", err)
	}
}
