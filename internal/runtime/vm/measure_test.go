//go:build linux

package vm

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
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
	"github.com/chaserhq/chaser/internal/agent"
	"github.com/chaserhq/chaser/internal/image"
	"github.com/chaserhq/chaser/internal/image/imagetest"
	"github.com/chaserhq/chaser/internal/runtime"
	"github.com/chaserhq/chaser/internal/runtime/runtimetest"
)

// TestMeasure reports what a microVM costs here (the README's numbers):
// boot to agent ready, an exec round trip, idle memory and a CPU-bound
// shell loop against the same loop on the host. It runs only with
// CHASER_MICROVM_MEASURE=1.
func TestMeasure(t *testing.T) {
	if os.Getenv("CHASER_MICROVM_MEASURE") == "" {
		t.Skip("set CHASER_MICROVM_MEASURE=1 to measure microVMs")
	}
	dir := t.TempDir()
	rt, err := New(Config{Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})), StateDir: filepath.Join(dir, "state"), CacheDir: filepath.Join(dir, "cache"), Accel: os.Getenv("CHASER_MICROVM_ACCEL")})
	if err != nil {
		t.Fatal(err)
	}
	reg := imagetest.StartRegistry(t)
	imgs, err := image.NewStore(t.TempDir(), slog.New(slog.DiscardHandler), image.WithAllowedRegistries([]string{reg.Host}))
	if err != nil {
		t.Fatal(err)
	}
	ref := reg.Push(t, "test/busybox:m", imagetest.Image(t, v1.Config{Env: []string{"PATH=/bin"}}, imagetest.BusyboxLayer(t)))
	if _, err := imgs.Pull(t.Context(), ref, image.PullOptions{}); err != nil {
		t.Fatal(err)
	}
	img, err := imgs.Resolve(t.Context(), ref)
	if err != nil {
		t.Fatal(err)
	}
	spec := func(id string) runtime.Spec {
		return runtime.Spec{ID: id, Hostname: id, AgentPath: runtimetest.AgentBinary(t), Env: img.Env,
			Limits: runtime.Limits{MemoryBytes: 256 << 20, MilliCPUs: 1000}, Rootfs: runtime.Rootfs{Overlays: img.Overlays}}
	}
	// The first create builds the base disk: the others boot with it
	// cached, one at a time (each deleted before the next, but the last).
	// The QEMU's CPU time to agent ready is the boot's work, which a
	// loaded host stretches into wall time.
	var boots, cpus []time.Duration
	for i, id := range []string{"m-warm", "m-boot1", "m-boot2", "m-boot3", "m-boot"} {
		start := time.Now()
		if err := rt.Create(t.Context(), spec(id)); err != nil {
			t.Fatal(err)
		}
		d := time.Since(start)
		cpu := qemuCPU(t, rt, id)
		t.Logf("create %d (boot to agent ready%s): %v, QEMU CPU time %v", i, map[int]string{0: ", base disk built"}[i], d, cpu)
		if i > 0 {
			boots = append(boots, d)
			cpus = append(cpus, cpu)
		}
		if id != "m-boot" {
			if err := rt.Delete(t.Context(), id); err != nil {
				t.Fatal(err)
			}
		}
		t.Cleanup(func() { rt.Delete(context.Background(), id) })
	}
	slices.Sort(boots)
	slices.Sort(cpus)
	t.Logf("boot to agent ready, base disk cached: median %v of %v; QEMU CPU time median %v of %v", boots[len(boots)/2], boots, cpus[len(cpus)/2], cpus)
	c := agent.NewClient(func(ctx context.Context) (net.Conn, error) { return rt.Dial(ctx, "m-boot") })
	defer c.Close()
	run := func(cmd string) string {
		x, err := c.Start(t.Context(), api.ExecRequest{Command: cmd, Cwd: "/"})
		if err != nil {
			t.Fatal(err)
		}
		resp, err := c.Output(t.Context(), x.ID, 0, true, false, "raw")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	var best time.Duration
	for range 10 {
		start := time.Now()
		run("true")
		if d := time.Since(start); best == 0 || d < best {
			best = d
		}
	}
	t.Logf("exec round trip (start `true` + read its output), best of 10: %v", best)
	best = 0
	for range 20 {
		start := time.Now()
		if _, err := c.Health(t.Context()); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); best == 0 || d < best {
			best = d
		}
	}
	t.Logf("agent health round trip over yamux/virtio-serial, best of 20: %v", best)
	time.Sleep(5 * time.Second)
	st, _ := rt.Stats(t.Context(), "m-boot")
	t.Logf("idle QEMU RSS (256 MiB limit + overhead guest): %d MiB", st.MemoryBytes>>20)
	loop := `i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done`
	start := time.Now()
	run(loop)
	guest := time.Since(start)
	start = time.Now()
	if out, err := exec.Command(imagetest.BusyboxPath, "sh", "-c", loop).CombinedOutput(); err != nil {
		t.Fatal(err, string(out))
	}
	host := time.Since(start)
	t.Logf("CPU-bound busybox sh loop: guest %v, host %v: %.1fx", guest, host, float64(guest)/float64(host))
	t.Logf("guest kernel: %s", strings.TrimSpace(run("uname -r")))
}

// qemuCPU is the CPU time (user + system) sandbox id's QEMU has used.
func qemuCPU(t *testing.T, rt *Runtime, id string) time.Duration {
	pid := rt.pid(id)
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond // USER_HZ 100
}
