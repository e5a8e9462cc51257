//go:build linux

package oci

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/chaserhq/chaser/internal/runtime"
	"github.com/chaserhq/chaser/internal/runtime/runtimetest"
)

func TestConformanceRunc(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: runc sandboxes need root")
	}
	if _, err := exec.LookPath("runc"); err != nil {
		t.Fatal("runc is not installed: apt-get install -y runc")
	}
	runtimetest.Run(t, func(t *testing.T) (runtime.Runtime, string) {
		dir := t.TempDir()
		rt, err := New(Config{Binary: "runc", StateDir: filepath.Join(dir, "state"), RootDir: filepath.Join(dir, "runc"), CgroupParent: "chaser-test"})
		if err != nil {
			t.Fatal(err)
		}
		return rt, dir
	})
}
