package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// mcpDir holds the MCP test's npm project: the official TypeScript SDK,
// pinned.
const mcpDir = "testdata/mcp"

// TestMCPSDKPlainLikeBash drives the terminal tool with the official MCP
// TypeScript SDK, as agents do: a plain command line (exec'd without
// bash, docs/ARCHITECTURE.md "Exec") must give what bash gives for the
// same line with a `;` — exit code, stdout (the environment as a set),
// stderr.
func TestMCPSDKPlainLikeBash(t *testing.T) {
	if _, err := os.Stat(mcpDir + "/node_modules/@modelcontextprotocol/sdk/package.json"); err != nil {
		t.Fatalf("the MCP SDK is missing in %s: run `. scripts/deps.sh && install_deps` (cd %s && npm ci)", mcpDir, mcpDir)
	}
	s := sharedServer(t)
	key := s.account(t, "paid")
	lines := []string{"env", "ls -l /etc/hostname /usr/bin/true", "cat /nonexistent", "printenv PWD SHLVL _",
		"echo hi there", "true", "false", "nosuchcmd-xyz", "id -u"}
	linesJSON, _ := json.Marshal(lines)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "plain.mjs")
	cmd.Dir = mcpDir
	cmd.Env = append(os.Environ(), "CHASER_URL="+s.URL, "CHASER_KEY="+key, "LINES="+string(linesJSON))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node plain.mjs: %v\n%s%s", err, out, stderr.Bytes())
	}
	type result struct {
		ExitCode int    `json:"exit_code"`
		Stdout   string `json:"stdout"`
		Stderr   string `json:"stderr"`
	}
	seen := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		var r struct {
			Line        string
			Plain, Bash result
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("%v: %s", err, sc.Bytes())
		}
		seen++
		for _, x := range []*result{&r.Plain, &r.Bash} {
			l := strings.Split(x.Stdout, "\n")
			slices.Sort(l)
			x.Stdout = strings.Join(l, "\n")
		}
		if r.Plain != r.Bash {
			t.Errorf("%q:\n plain %+v\n bash  %+v", r.Line, r.Plain, r.Bash)
		}
		if r.Line == "printenv PWD SHLVL _" && r.Plain.Stdout != "\n/tmp\n/usr/bin/printenv\n0" {
			t.Errorf("printenv: %q", r.Plain.Stdout)
		}
	}
	if seen != len(lines) {
		t.Fatalf("%d results for %d command lines:\n%s", seen, len(lines), out)
	}
}
