package process

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// threads is this process's OS thread count.
func threads(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err) // the agent runs on Linux only
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Threads:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no Threads: line in /proc/self/status")
	return 0
}

// TestSpareThreads checks that spareThreads leaves at least n OS threads
// beside the one running, with one P as in the agent, and that they stay:
// the next calls that need threads take the idle ones instead of making
// new ones. (TestForkBombKeepsSandbox checks what it is for.)
func TestSpareThreads(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	spareThreads(SpareThreads)
	after := threads(t)
	if after < SpareThreads+1 {
		t.Fatalf("threads: %d after spareThreads(%d)", after, SpareThreads)
	}
	// Work that needs threads for blocking calls takes the idle ones:
	// three more rounds would add 3n threads if they did not (other
	// tests' leftovers in this process may still add one or two).
	for range 3 {
		spareThreads(SpareThreads)
	}
	if again := threads(t); again >= after+SpareThreads {
		t.Fatalf("threads: %d after the first spareThreads, %d after three more: the idle ones were not reused", after, again)
	}
}
