package nice

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// TestSet renices every thread of a child and checks each, and that a
// missing process is an error.
func TestSet(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	if err := Set(cmd.Process.Pid, 7); err != nil {
		t.Fatal(err)
	}
	tasks, err := os.ReadDir("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/task")
	if err != nil || len(tasks) == 0 {
		t.Fatalf("threads: %v %v", tasks, err)
	}
	for _, task := range tasks {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/task/" + task.Name() + "/stat")
		if err != nil {
			t.Fatal(err)
		}
		// Fields after the command name: state is 3rd, nice the 19th.
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
		if f[16] != "7" {
			t.Errorf("thread %s: nice %s, want 7", task.Name(), f[16])
		}
	}
	if err := Set(1<<30, 0); err == nil {
		t.Error("Set of a missing process succeeded")
	}
}
