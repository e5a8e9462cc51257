package agent

import (
	"os/exec"
	"strings"
	"testing"
)

// TestAgentImportsStaySmall keeps the agent, which runs in every sandbox,
// to the standard library, Chaser's wire and error packages, and two small
// libraries (PTYs and WebSockets).
func TestAgentImportsStaySmall(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	allowed := []string{
		"github.com/chaserhq/chaser/api",
		"github.com/chaserhq/chaser/internal/agent",
		"github.com/chaserhq/chaser/internal/errdefs",
		"github.com/chaserhq/chaser/internal/httpjson",
		"github.com/creack/pty",
		"github.com/coder/websocket",
	}
	for _, pkg := range strings.Fields(string(out)) {
		ok := false
		for _, a := range allowed {
			if pkg == a || strings.HasPrefix(pkg, a+"/") {
				ok = true
			}
		}
		if !ok {
			t.Errorf("the agent imports %s; keep it small (stdlib, api, errdefs, httpjson, creack/pty, coder/websocket)", pkg)
		}
	}
}
