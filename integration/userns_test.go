package integration

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// usernsRange is the --userns-remap of the tests' remapped servers.
const (
	usernsBase  = 100000
	usernsRange = "100000:65536"
)

// agentHostUID returns the host uid of sandbox id's agent (its init), read
// on the host from /proc/PID/status.
func agentHostUID(t *testing.T, s *Server, id string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.stateDir(id), "pid"))
	if err != nil {
		t.Fatalf("the agent's pid file: %v", err)
	}
	f, err := os.Open(fmt.Sprintf("/proc/%s/status", strings.TrimSpace(string(b))))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Uid:"); ok {
			uid, err := strconv.Atoi(strings.Fields(v)[0])
			if err != nil {
				t.Fatal(err)
			}
			return uid
		}
	}
	t.Fatal("no Uid line in the agent's status")
	return -1
}
