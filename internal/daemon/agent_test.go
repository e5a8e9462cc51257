package daemon

import (
	"os"
	"path/filepath"
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
