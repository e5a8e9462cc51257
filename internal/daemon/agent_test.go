package daemon

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

func TestAgentPath(t *testing.T) {
	dir := t.TempDir()
	self := filepath.Join(dir, "chaser")
	if got := AgentPath(self); got != self {
		t.Fatalf("without chaser-agent: %s, want %s", got, self)
	}
	agent := filepath.Join(dir, "chaser-agent")
	if err := os.WriteFile(agent, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := AgentPath(self); got != self {
		t.Fatalf("with a non-executable chaser-agent: %s, want %s", got, self)
	}
	if err := os.Chmod(agent, 0o755); err != nil {
		t.Fatal(err)
	}
	if got := AgentPath(self); got != agent {
		t.Fatalf("with chaser-agent: %s, want %s", got, agent)
	}
}

// TestInterpreter checks that a static agent build is told from a cgo one,
// which needs the host's libc in every sandbox (minimal images have none).
func TestInterpreter(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("ELF binaries: not linux")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "main.go")
	if err := os.WriteFile(src, []byte("package main\nimport \"os/user\"\nfunc main() { user.Current() }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		cgo  string
		want bool // dynamic
	}{{"0", false}, {"1", true}} {
		out := filepath.Join(dir, "bin-cgo"+tc.cgo)
		cmd := exec.Command("go", "build", "-o", out, src)
		cmd.Env = append(os.Environ(), "CGO_ENABLED="+tc.cgo)
		if b, err := cmd.CombinedOutput(); err != nil {
			if tc.cgo == "1" {
				t.Logf("no cgo toolchain here, dynamic case not built: %v %s", err, b)
				continue
			}
			t.Fatalf("go build: %v %s", err, b)
		}
		if got := Interpreter(out); (got != "") != tc.want {
			t.Errorf("CGO_ENABLED=%s: interpreter %q, want dynamic=%v", tc.cgo, got, tc.want)
		}
	}
	if got := Interpreter(filepath.Join(dir, "missing")); got != "" {
		t.Errorf("missing file: %q", got)
	}
}
