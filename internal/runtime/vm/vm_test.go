//go:build linux

package vm

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
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

// TestPruneDisks: base disks whose layers are gone are removed with their
// layer lists; those whose layers remain stay.
func TestPruneDisks(t *testing.T) {
	cache, layers := t.TempDir(), t.TempDir()
	kept := filepath.Join(layers, "kept")
	if err := os.Mkdir(kept, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, lowers := range map[string]string{
		"base-keep": kept + "\n",
		"base-gone": kept + "\n" + filepath.Join(layers, "collected") + "\n",
	} {
		for ext, data := range map[string]string{".ext4": "disk", ".layers": lowers} {
			if err := os.WriteFile(filepath.Join(cache, name+ext), []byte(data), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	r := &Runtime{cfg: Config{CacheDir: cache}, log: slog.New(slog.DiscardHandler)}
	n, err := r.PruneDisks(t.Context())
	if err != nil || n != 1 {
		t.Fatalf("PruneDisks = %d, %v; want 1", n, err)
	}
	left, _ := filepath.Glob(filepath.Join(cache, "base-*"))
	want := []string{filepath.Join(cache, "base-keep.ext4"), filepath.Join(cache, "base-keep.layers")}
	if !slices.Equal(left, want) {
		t.Fatalf("left %v, want %v", left, want)
	}
}
