// Package runtimetest is the conformance suite every runtime.Runtime passes:
// lifecycle, the agent connection, recovery listing and complete release of
// what a sandbox held.
package runtimetest

import (
	"context"
	"errors"
	"github.com/chaserhq/chaser/internal/userns"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/agent"
	"github.com/chaserhq/chaser/internal/errdefs"
	"github.com/chaserhq/chaser/internal/image"
	"github.com/chaserhq/chaser/internal/image/imagetest"
	"github.com/chaserhq/chaser/internal/runtime"
	"github.com/chaserhq/chaser/internal/testserver"
)

// AgentBinary builds the chaser binary (static) once per test process.
func AgentBinary(t *testing.T) string {
	bin, err := testserver.Binary()
	if err != nil {
		t.Fatalf("build chaser: %v", err)
	}
	// The small agent binary, as the server uses when it is there: a VM's
	// initramfs carries it in guest memory.
	if small := filepath.Join(filepath.Dir(bin), "chaser-agent"); fileExists(small) {
		return small
	}
	return bin
}

func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// Factory returns a fresh runtime and the directory that holds all of its
// state (checked for leftovers).
type Factory func(t *testing.T) (rt runtime.Runtime, stateDir string)

// Options adapt the suite to a runtime.
type Options struct {
	// OCIImage makes the sandboxes from a busybox OCI image, pushed to a
	// registry started in the test and pulled, instead of the host image:
	// for runtimes that run OCI images only (microvm).
	OCIImage bool
}

// Run runs the suite on the host image.
func Run(t *testing.T, newRuntime Factory) { RunWith(t, newRuntime, Options{}) }

// RunWith runs the suite with options.
func RunWith(t *testing.T, newRuntime Factory, o Options) {
	t.Run("Lifecycle", func(t *testing.T) { o.testLifecycle(t, newRuntime) })
	t.Run("FailedCreateLeavesNothing", func(t *testing.T) { o.testFailedCreate(t, newRuntime) })
	t.Run("Remnants", func(t *testing.T) { o.testRemnants(t, newRuntime) })
	t.Run("WritesReachUpper", func(t *testing.T) { o.testWritesReachUpper(t, newRuntime) })
	t.Run("ConcurrentDials", func(t *testing.T) { o.testConcurrentDials(t, newRuntime) })
	t.Run("Loopback", func(t *testing.T) { o.testLoopback(t, newRuntime) })
	t.Run("OOMReported", func(t *testing.T) { o.testOOM(t, newRuntime) })
}

// run runs command in sandbox id through its agent and returns its output.
// Exec runs command in sandbox id through its agent and returns its
// output (stdout).
func Exec(t *testing.T, rt runtime.Runtime, id, command string) string {
	return run(t, rt, id, command)
}

func run(t *testing.T, rt runtime.Runtime, id, command string) string {
	t.Helper()
	c := agent.NewClient(func(ctx context.Context) (net.Conn, error) { return rt.Dial(ctx, id) })
	defer c.Close()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd, err := c.Start(ctx, api.ExecRequest{Command: command, Cwd: "/"})
	if err != nil {
		t.Fatalf("start %q: %v", command, err)
	}
	resp, err := c.Output(ctx, cmd.ID, 0, true, false, "raw")
	if err != nil {
		t.Fatalf("output of %q: %v", command, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// testWritesReachUpper checks what workspaces rely on: writes to the root
// and to a further overlay (/usr of the host image) land in the given
// upper directory on the host and survive Delete.
func (o Options) testWritesReachUpper(t *testing.T, newRuntime Factory) {
	rt, _ := newRuntime(t)
	id := "rt-upper"
	s := o.spec(t, rt, id)
	s.Rootfs.UpperDir = filepath.Join(t.TempDir(), "upper")
	if err := rt.Create(t.Context(), s); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Delete(context.Background(), id) })
	if out := run(t, rt, id, "mkdir -p /root /usr/local && echo kept >/root/kept && echo usr >/usr/local/kept && echo ok"); out != "ok\n" {
		t.Fatalf("writes: %q", out)
	}
	if err := rt.Delete(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	found := 0
	walk := func(dir string) {
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() && d.Name() == "kept" {
				found++
			}
			return nil
		})
	}
	walk(s.Rootfs.UpperDir)
	// A VM runtime keeps the writable layer as an ext4 disk image in the
	// upper directory: look inside it. Mounted read-write, as the next
	// guest would: the guest synced but did not unmount it, so its
	// journal is replayed first.
	disks, _ := filepath.Glob(filepath.Join(s.Rootfs.UpperDir, "*.ext4"))
	for _, disk := range disks {
		mnt := t.TempDir()
		if out, err := exec.Command("mount", "-o", "loop", disk, mnt).CombinedOutput(); err != nil {
			t.Fatalf("mount %s: %v: %s", disk, err, out)
		}
		walk(mnt)
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Fatalf("umount %s: %v: %s", mnt, err, out)
		}
	}
	if found != 2 {
		t.Fatalf("found %d of 2 written files in the upper dir after Delete", found)
	}
}

// testConcurrentDials opens many agent connections at once, as a busy
// session does (streams, terminals, forwards).
func (o Options) testConcurrentDials(t *testing.T, newRuntime Factory) {
	rt, _ := newRuntime(t)
	id := "rt-dials"
	if err := rt.Create(t.Context(), o.spec(t, rt, id)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Delete(context.Background(), id) })
	const n = 32
	errs := make(chan error, n)
	for range n {
		go func() {
			c := agent.NewClient(func(ctx context.Context) (net.Conn, error) { return rt.Dial(ctx, id) })
			defer c.Close()
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			_, err := c.Health(ctx)
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// testLoopback checks that a sandbox has a working loopback interface:
// apps listen on 127.0.0.1 and the agent dials them for port forwarding.
func (o Options) testLoopback(t *testing.T, newRuntime Factory) {
	rt, _ := newRuntime(t)
	id := "rt-lo"
	if err := rt.Create(t.Context(), o.spec(t, rt, id)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Delete(context.Background(), id) })
	command := `python3 -c "
import socket
l = socket.socket(); l.bind(('127.0.0.1', 0)); l.listen()
socket.create_connection(l.getsockname(), 2).close(); print('ok')" 2>&1`
	if o.OCIImage { // busybox: nc listens, nc connects over 127.0.0.1
		command = `nc -l -p 7777 >/tmp/got & sleep 1; echo ok | nc 127.0.0.1 7777; sleep 0.5; cat /tmp/got`
	}
	out := run(t, rt, id, command)
	if out != "ok\n" {
		t.Fatalf("loopback listen and connect: %q", out)
	}
}

// testOOM checks that a sandbox that ran out of memory says so
// (Instance.OOMKilled). runc kills only the offending process and the
// sandbox lives on; under runsc the whole sandbox dies, and then State must
// not say Running.
func (o Options) testOOM(t *testing.T, newRuntime Factory) {
	rt, _ := newRuntime(t)
	id := "rt-oom"
	s := o.spec(t, rt, id)
	s.Limits.MemoryBytes = 64 << 20
	if err := rt.Create(t.Context(), s); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Delete(context.Background(), id) })
	c := agent.NewClient(func(ctx context.Context) (net.Conn, error) { return rt.Dial(ctx, id) })
	defer c.Close()
	// tail keeps a line in memory until it ends: this one never does.
	if _, err := c.Start(t.Context(), api.ExecRequest{Command: "head -c 1000000000 /dev/zero | tail -n 1", Cwd: "/"}); err != nil {
		t.Fatal(err)
	}
	// A TCG guest on a busy 2-core host fills its memory slowly (seconds
	// alone, over a minute beside other suites): the bound only catches a
	// runtime that never reports.
	const bound = 3 * time.Minute
	deadline := time.Now().Add(bound)
	for {
		in, err := rt.State(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if in.OOMKilled {
			if in.State == runtime.Running {
				hctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
				_, herr := c.Health(hctx)
				cancel()
				if herr != nil {
					t.Fatalf("State = %+v after the OOM kill, but the agent does not answer: %v", in, herr)
				}
			}
			t.Logf("after the OOM kill: %+v", in)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no OOM kill reported within %v: %+v", bound, in)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// remapper is implemented by runtimes that may run sandboxes under a
// user-namespace remap (oci.Runtime); their images must be unpacked for it.
type remapper interface{ Remap() userns.Remap }

// Spec returns the spec of a sandbox id running the host image (made for
// the remap m) with the agent as init.
func Spec(t *testing.T, m userns.Remap, id string) runtime.Spec {
	return Options{}.specFor(t, m, id)
}

func (o Options) spec(t *testing.T, rt runtime.Runtime, id string) runtime.Spec {
	var m userns.Remap
	if r, ok := rt.(remapper); ok {
		m = r.Remap()
	}
	return o.specFor(t, m, id)
}

func (o Options) specFor(t *testing.T, m userns.Remap, id string) runtime.Spec {
	var reg *imagetest.Registry
	opts := []image.Option{image.WithRemap(m)}
	if o.OCIImage {
		reg = imagetest.StartRegistry(t)
		opts = append(opts, image.WithAllowedRegistries([]string{reg.Host}))
	}
	imgs, err := image.NewStore(t.TempDir(), slog.New(slog.DiscardHandler), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { imgs.Close() })
	ref := image.HostRef
	if o.OCIImage {
		ref = reg.Push(t, "test/busybox:v1", imagetest.Image(t, v1.Config{Env: []string{"PATH=/bin"}}, imagetest.BusyboxLayer(t)))
		if _, err := imgs.Pull(t.Context(), ref, image.PullOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	img, err := imgs.Resolve(t.Context(), ref)
	if err != nil {
		t.Fatal(err)
	}
	return runtime.Spec{
		ID: id, Hostname: id, AgentPath: AgentBinary(t),
		Env:    append(img.Env, "CHASER=1"),
		Limits: runtime.Limits{MemoryBytes: 256 << 20, MilliCPUs: 500, Pids: 128},
		Rootfs: runtime.Rootfs{Overlays: img.Overlays},
	}
}

// mountsUnder returns the mounts under dir, but those of the probe
// sandbox an oci runtime makes beside the first sandbox, for its seccomp
// filter (it deletes it when done, or on Close).
func mountsUnder(dir string) []string {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, dir) && !strings.Contains(l, "/seccomp-probe-") {
			out = append(out, l)
		}
	}
	return out
}

func (o Options) testLifecycle(t *testing.T, newRuntime Factory) {
	rt, state := newRuntime(t)
	ctx := t.Context()
	id := "rt-life-" + rt.Name() // per runtime: the cgroup check below globs every parent, and packages run in parallel
	if err := rt.Create(ctx, o.spec(t, rt, id)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Delete(context.Background(), id) })
	if err := rt.Create(ctx, o.spec(t, rt, id)); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Fatalf("second Create = %v, want ErrAlreadyExists", err)
	}
	in, err := rt.State(ctx, id)
	if err != nil || in.State != runtime.Running {
		t.Fatalf("State = %+v, %v", in, err)
	}
	c := agent.NewClient(func(ctx context.Context) (net.Conn, error) { return rt.Dial(ctx, id) })
	defer c.Close()
	hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	h, err := c.Health(hctx)
	if err != nil || h.PID != 1 {
		t.Fatalf("agent health = %+v, %v (the agent must be PID 1)", h, err)
	}
	cmd, err := c.Start(ctx, api.ExecRequest{Command: "hostname; echo $CHASER", Cwd: "/"})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Output(ctx, cmd.ID, 0, true, false, "raw")
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	buf := make([]byte, 512)
	for {
		n, err := resp.Body.Read(buf)
		out.Write(buf[:n])
		if err != nil {
			break
		}
	}
	resp.Body.Close()
	if out.String() != id+"\n1\n" {
		t.Fatalf("hostname; echo $CHASER = %q", out.String())
	}
	list, err := rt.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, in := range list {
		found = found || in.ID == id && in.State == runtime.Running
	}
	if !found {
		t.Fatalf("List = %+v lacks %s", list, id)
	}
	st, err := rt.Stats(ctx, id)
	if err != nil || st.MemoryBytes <= 0 {
		t.Fatalf("Stats = %+v, %v", st, err)
	}

	if err := rt.Delete(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.State(ctx, id); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("State after Delete = %v, want ErrNotFound", err)
	}
	if m := mountsUnder(state); len(m) > 0 {
		t.Fatalf("mounts left after Delete: %v", m)
	}
	if cgs, _ := filepath.Glob("/sys/fs/cgroup/*/*/" + id); len(cgs) > 0 {
		t.Fatalf("cgroups left after Delete: %v", cgs)
	}
	if err := rt.Delete(ctx, id); err != nil {
		t.Fatalf("second Delete = %v, want nil", err)
	}
}

func (o Options) testFailedCreate(t *testing.T, newRuntime Factory) {
	rt, state := newRuntime(t)
	s := o.spec(t, rt, "rt-fail")
	s.AgentPath = "/does/not/exist"
	if err := rt.Create(t.Context(), s); err == nil {
		rt.Delete(context.Background(), s.ID)
		t.Fatal("Create with a missing agent binary succeeded")
	}
	if m := mountsUnder(state); len(m) > 0 {
		t.Fatalf("mounts left after a failed Create: %v", m)
	}
	if _, err := rt.State(t.Context(), s.ID); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("State after failed Create = %v, want ErrNotFound", err)
	}
	bad := o.spec(t, rt, "Bad_ID")
	if err := rt.Create(t.Context(), bad); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("Create(bad id) = %v", err)
	}
}

// testRemnants checks that a sandbox whose processes died (as after a host
// crash) is listed so recovery can find it, and that Delete releases it.
func (o Options) testRemnants(t *testing.T, newRuntime Factory) {
	rt, state := newRuntime(t)
	ctx := t.Context()
	id := "rt-remnant"
	if err := rt.Create(ctx, o.spec(t, rt, id)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Delete(context.Background(), id) })
	in, err := rt.State(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if p, err := os.FindProcess(in.PID); err == nil {
		p.Kill()
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		in, err = rt.State(ctx, id)
		if err == nil && in.State == runtime.Stopped {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("State after kill = %+v, %v; want Stopped", in, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	list, err := rt.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, in := range list {
		found = found || in.ID == id
	}
	if !found {
		t.Fatalf("dead sandbox not listed: %+v", list)
	}
	if err := rt.Delete(ctx, id); err != nil {
		t.Fatal(err)
	}
	if m := mountsUnder(state); len(m) > 0 {
		t.Fatalf("mounts left: %v", m)
	}
}

// AllThreadsFiltered fails t unless host process pid (a runc sandbox's
// agent) has several threads and every one of them holds a seccomp
// filter, as the agent's TSYNC install promises.
func AllThreadsFiltered(t *testing.T, pid int) {
	t.Helper()
	tasks, _ := filepath.Glob(filepath.Join("/proc", strconv.Itoa(pid), "task", "*", "status"))
	if len(tasks) < 2 {
		t.Fatalf("agent threads: %v", tasks)
	}
	for _, st := range tasks {
		b, _ := os.ReadFile(st)
		if !strings.Contains(string(b), "\nSeccomp:\t2\n") {
			t.Fatalf("agent thread %s is not filtered", st)
		}
	}
}
