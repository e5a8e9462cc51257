package oci

import (
	"os"
	"strings"
	"testing"
)

// TestRunscPinnedOnce checks that the setup scripts install the runsc the
// server asks for (its error messages name RunscInstall).
func TestRunscPinnedOnce(t *testing.T) {
	b, err := os.ReadFile("../../../scripts/deps.sh")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "RUNSC_MODULE="+RunscModule+"\n") || !strings.Contains(string(b), "RUNSC_CACHE="+RunscCache+"\n") {
		t.Fatalf("scripts/deps.sh does not pin %s into %s", RunscModule, RunscCache)
	}
}
