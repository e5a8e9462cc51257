//go:build linux

package vm

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/chaserhq/chaser/internal/runtime"
	"github.com/chaserhq/chaser/internal/runtime/runtimetest"
)

// TestConformanceMicroVM runs the suite with QEMU microVMs (KVM when
// usable, else TCG; CHASER_MICROVM_ACCEL forces one) booting the kernel
// that scripts/microvm.sh built, on a busybox OCI image. After each test
// no QEMU of it may be left.
func TestConformanceMicroVM(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: microVM sandboxes need root (mounts, loop devices)")
	}
	runtimetest.RunWith(t, func(t *testing.T) (runtime.Runtime, string) {
		dir := t.TempDir()
		rt, err := New(Config{Log: slog.New(slog.NewTextHandler(os.Stderr, nil)), StateDir: filepath.Join(dir, "state"), CacheDir: filepath.Join(dir, "cache"), Accel: os.Getenv("CHASER_MICROVM_ACCEL")})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("accelerator: %s", rt.Accel())
		t.Cleanup(func() {
			rt.Close()
			if procs := qemuUnder(dir); len(procs) > 0 {
				t.Errorf("QEMU processes left: %v", procs)
			}
		})
		return rt, dir
	}, runtimetest.Options{OCIImage: true})
}

// qemuUnder lists the pids of processes whose command line names dir.
func qemuUnder(dir string) []string {
	var out []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(b, []byte(dir)) && bytes.Contains(b, []byte("qemu")) {
			out = append(out, e.Name())
		}
	}
	return out
}
