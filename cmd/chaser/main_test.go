package main

import (
	"os"
	"os/exec"
	"testing"
)

// TestBuildsForMacOS keeps the CLI building outside Linux: Linux-only code
// sits in _linux.go files with stubs elsewhere (STYLE.md).
func TestBuildsForMacOS(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the cross-build in -short mode")
	}
	cmd := exec.Command("go", "build", "-o", os.DevNull, ".")
	cmd.Env = append(os.Environ(), "GOOS=darwin", "GOARCH=arm64", "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("GOOS=darwin go build: %v\n%s", err, out)
	}
}
