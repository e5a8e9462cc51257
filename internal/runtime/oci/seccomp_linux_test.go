package oci

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/net/bpf"

	"github.com/chaserhq/chaser/internal/runtime/runtimetest"
	"github.com/chaserhq/chaser/internal/userns"
)

// TestSeccompFromProbe checks the compiled filter: after a first sandbox
// (profile in its config, runc compiles it) the runtime reads the filter
// from a probe sandbox; the next sandbox has no profile in its config and
// its agent holds, on every thread, the same program byte for byte as
// runc installed in the first; the probe is gone; commands are filtered.
func TestSeccompFromProbe(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: runc sandboxes need root")
	}
	if _, err := exec.LookPath("runc"); err != nil {
		t.Fatal("runc is not installed: apt-get install -y runc")
	}
	t.Run("plain", func(t *testing.T) {
		dir := t.TempDir()
		rt, err := New(Config{Name: "runc", StateDir: filepath.Join(dir, "state"), RootDir: filepath.Join(dir, "runc"), CgroupParent: "chaser-test"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rt.Close() })
		seccompFromProbe(t, rt, userns.Remap{})
	})
	t.Run("userns-remap", func(t *testing.T) {
		rt, _ := newRemapped(t)
		seccompFromProbe(t, rt, testRemap)
	})
}

func seccompFromProbe(t *testing.T, rt *Runtime, m userns.Remap) {
	ctx := t.Context()

	first := runtimetest.Spec(t, m, "sc-first")
	if err := rt.Create(ctx, first); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Delete(context.Background(), first.ID) })
	if cfg := config(t, rt, first.ID); cfg.Linux.Seccomp == nil || len(cfg.Process.Args) != 2 {
		t.Fatalf("first sandbox: seccomp %v, args %q; want the profile through runc", cfg.Linux.Seccomp != nil, cfg.Process.Args)
	}
	deadline := time.Now().Add(30 * time.Second)
	for rt.seccompProgram() == nil {
		if time.Now().After(deadline) {
			t.Fatal("no filter read 30 s after the first sandbox")
		}
		time.Sleep(20 * time.Millisecond)
	}
	prog := rt.seccompProgram()
	rt.filter.mu.Lock()
	tries := rt.filter.tries
	rt.filter.mu.Unlock()
	if tries != 1 {
		t.Fatalf("the filter was read at try %d: the first probe failed", tries)
	}

	second := runtimetest.Spec(t, m, "sc-second")
	if err := rt.Create(ctx, second); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Delete(context.Background(), second.ID) })
	if cfg := config(t, rt, second.ID); cfg.Linux.Seccomp != nil || !strings.Contains(strings.Join(cfg.Process.Args, " "), "--seccomp-fd 4") {
		t.Fatalf("second sandbox: seccomp %v, args %q; want the agent to install it", cfg.Linux.Seccomp != nil, cfg.Process.Args)
	}
	// The agent installs it before it serves: once it answers, it has it.
	if out := runtimetest.Exec(t, rt, second.ID, "grep ^Seccomp /proc/self/status; unshare -U true 2>/dev/null || echo refused"); out != "Seccomp:\t2\nSeccomp_filters:\t1\nrefused\n" {
		t.Fatalf("a command of the second sandbox: %q", out)
	}
	// runc's own ENOSYS stub in front of libseccomp's program orders its
	// architecture checks by a Go map's iteration: two runc runs of one
	// profile differ in those few instructions. So: the same answers.
	sameAnswers(t, filterOf(t, rt, first.ID), prog)
	if got := filterOf(t, rt, second.ID); !bytes.Equal(got, prog) {
		t.Fatalf("second sandbox's filter (%d bytes) is not the one read (%d bytes)", len(got), len(prog))
	}
	pid, err := rt.PID(second.ID)
	if err != nil {
		t.Fatal(err)
	}
	runtimetest.AllThreadsFiltered(t, pid)
	list, err := rt.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range list {
		if strings.HasPrefix(in.ID, "seccomp-probe-") {
			t.Fatalf("probe sandbox left: %+v", in)
		}
	}
}

func config(t *testing.T, rt *Runtime, id string) specs.Spec {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(rt.dir(id), "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s specs.Spec
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

func filterOf(t *testing.T, rt *Runtime, id string) []byte {
	t.Helper()
	pid, err := rt.PID(id)
	if err != nil {
		t.Fatal(err)
	}
	prog, err := readSeccomp(pid)
	if err != nil {
		t.Fatal(err)
	}
	return prog
}

// sameAnswers fails unless seccomp filters a and b answer alike every
// system call number up to 600 (and x32's, and a few beyond) of x86-64,
// i386 and an architecture neither knows, with first arguments that the
// profile's argument rules tell apart (socket families, personalities,
// clone flags).
func sameAnswers(t *testing.T, a, b []byte) {
	t.Helper()
	va, vb := vm(t, a), vm(t, b)
	arches := []uint32{0xc000003e /* x86_64 */, 0x40000003 /* i386 */, 0xc00000b7 /* aarch64 */}
	var nrs []uint32
	for nr := uint32(0); nr < 600; nr++ {
		nrs = append(nrs, nr, nr|0x40000000)
	}
	nrs = append(nrs, 1000, 0xffffffff)
	arg0 := []uint64{0, 1, 2, 3, 7, 8, 10, 16, 17, 38, 40, 44, 45, 46, 0xffffffff, 1 << 32, 131072, 131080, 0x10000000, 0x7e020000, 0x00010000 | 0x01000000}
	n := 0
	for _, arch := range arches {
		for _, nr := range nrs {
			for _, x := range arg0 {
				in := seccompData(nr, arch, x)
				ra, erra := va.Run(in)
				rb, errb := vb.Run(in)
				if erra != nil || errb != nil || ra != rb {
					t.Fatalf("nr %#x arch %#x arg0 %#x: %#x (%v) vs %#x (%v)", nr, arch, x, ra, erra, rb, errb)
				}
				n++
			}
		}
	}
	t.Logf("%d calls answered alike", n)
	// And the VM reads them as the kernel would: read(2) allowed,
	// unshare(2) refused with EPERM (no CAP_SYS_ADMIN), socket(AF_INET)
	// allowed and socket(AF_VSOCK) not.
	for _, c := range []struct {
		nr   uint32
		arg0 uint64
		want int
	}{{0, 0, 0x7fff0000}, {272, 0x10000000, 0x50001}, {41, 2, 0x7fff0000}, {41, 40, 0x50001}} {
		if got, _ := va.Run(seccompData(c.nr, 0xc000003e, c.arg0)); got != c.want {
			t.Fatalf("x86-64 call %d (%#x): %#x, want %#x", c.nr, c.arg0, got, c.want)
		}
	}
}

func vm(t *testing.T, prog []byte) *bpf.VM {
	t.Helper()
	raw := make([]bpf.RawInstruction, len(prog)/8)
	for i := range raw {
		x := prog[8*i:]
		raw[i] = bpf.RawInstruction{Op: binary.NativeEndian.Uint16(x), Jt: x[2], Jf: x[3], K: binary.NativeEndian.Uint32(x[4:])}
	}
	ins, ok := bpf.Disassemble(raw)
	if !ok {
		t.Fatal("filter does not disassemble")
	}
	v, err := bpf.NewVM(ins)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// seccompData is struct seccomp_data for bpf.VM, which loads words big
// endian: each 32-bit word is laid out so, at the offset the kernel's
// (little-endian) layout has it.
func seccompData(nr, arch uint32, arg0 uint64) []byte {
	b := make([]byte, 64)
	binary.BigEndian.PutUint32(b[0:], nr)
	binary.BigEndian.PutUint32(b[4:], arch)
	binary.BigEndian.PutUint32(b[16:], uint32(arg0))
	binary.BigEndian.PutUint32(b[20:], uint32(arg0>>32))
	return b
}

// TestFilterPipe checks the largest program the kernel takes reaches the
// agent's end whole, with nothing reading the pipe meanwhile.
func TestFilterPipe(t *testing.T) {
	prog := make([]byte, 8*maxFilterInsns)
	for i := range prog {
		prog[i] = byte(i)
	}
	pr, err := filterPipe(prog)
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	got, err := io.ReadAll(pr)
	if err != nil || !bytes.Equal(got, prog) {
		t.Fatalf("read %d bytes (%v), want the %d written", len(got), err, len(prog))
	}
}
