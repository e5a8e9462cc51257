package agent

import (
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// allowAll is a one-instruction seccomp program: RET SECCOMP_RET_ALLOW.
func allowAll() []byte {
	b := binary.NativeEndian.AppendUint16(nil, unix.BPF_RET|unix.BPF_K)
	b = append(b, 0, 0)
	return binary.NativeEndian.AppendUint32(b, unix.SECCOMP_RET_ALLOW)
}

func filterFD(t *testing.T, prog []byte) int {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	w.Write(prog)
	w.Close()
	fd, err := unix.Dup(int(r.Fd()))
	r.Close()
	if err != nil {
		t.Fatal(err)
	}
	return fd
}

// TestSeccompFailsClosed checks that an agent told to filter does not
// serve when it cannot: a filter of no instructions, a torn one, one the
// kernel refuses (an unknown opcode), a closed fd.
func TestSeccompFailsClosed(t *testing.T) {
	bad := allowAll()
	binary.NativeEndian.PutUint16(bad, 0xffff)
	for name, fd := range map[string]int{
		"empty":    filterFD(t, nil),
		"torn":     filterFD(t, allowAll()[:5]),
		"refused":  filterFD(t, bad),
		"too long": filterFD(t, make([]byte, 8*(maxFilterInsns+1))),
		"closed":   999,
	} {
		sock := filepath.Join(t.TempDir(), "agent.sock")
		err := Main(sock, fd)
		if err == nil || !strings.Contains(err.Error(), "seccomp") {
			t.Errorf("%s: Main = %v, want a seccomp error", name, err)
		}
		if _, serr := os.Stat(sock); serr == nil {
			t.Errorf("%s: the agent listened without its filter", name)
		}
	}
}

// TestSeccompAllThreads installs a filter in a child process (a filter
// cannot be removed) and checks every thread of it holds the filter.
func TestSeccompAllThreads(t *testing.T) {
	if os.Getenv("CHASER_TEST_SECCOMP_CHILD") == "1" {
		if err := installSeccomp(3); err != nil {
			t.Fatal(err)
		}
		tasks, _ := filepath.Glob("/proc/self/task/*/status")
		for _, st := range tasks {
			b, _ := os.ReadFile(st)
			if !strings.Contains(string(b), "\nSeccomp:\t2\n") {
				t.Fatalf("%s: not filtered", st)
			}
		}
		if len(tasks) < 2 {
			t.Fatalf("%d threads: want the runtime's several", len(tasks))
		}
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^TestSeccompAllThreads$", "-test.v")
	cmd.Env = append(os.Environ(), "CHASER_TEST_SECCOMP_CHILD=1")
	r, w, _ := os.Pipe()
	w.Write(allowAll())
	w.Close()
	cmd.ExtraFiles = []*os.File{r}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestSeccompAllThreads") {
		t.Fatalf("child: %v\n%s", err, out)
	}
}
