package image

import (
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestHostImage checks the host image: its skeleton holds a curated /etc
// without secrets, and it is rebuilt only when its content changes.
func TestHostImage(t *testing.T) {
	dir := t.TempDir()
	s, err := NewStore(dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	img, err := s.Resolve(t.Context(), "")
	if err != nil || img.Ref != HostRef {
		t.Fatalf("Resolve(\"\") = %+v, %v", img, err)
	}
	root := img.Overlays[0].Lower[0]
	if img.Overlays[0].Target != "/" {
		t.Fatalf("first overlay = %+v", img.Overlays[0])
	}
	for _, secret := range []string{"etc/shadow", "etc/gshadow", "etc/ssh", "etc/ssl/private", "etc/sudoers", "etc/machine-id"} {
		if _, err := os.Lstat(filepath.Join(root, secret)); err == nil {
			t.Errorf("the host image exposes %s", secret)
		}
	}
	passwd, err := os.ReadFile(filepath.Join(root, "etc/passwd"))
	if err != nil || !strings.HasPrefix(string(passwd), "root:x:0:0:") || strings.Count(string(passwd), "\n") != 2 {
		t.Errorf("etc/passwd = %q, %v", passwd, err)
	}
	for _, d := range []string{"workspace", "tmp", "root", "proc", "usr"} {
		if fi, err := os.Stat(filepath.Join(root, d)); err != nil || !fi.IsDir() {
			t.Errorf("%s: %v", d, err)
		}
	}
	if fi, _ := os.Stat(filepath.Join(root, "tmp")); fi.Mode()&fs.ModeSticky == 0 || fi.Mode().Perm() != 0o777 {
		t.Errorf("tmp mode = %v", fi.Mode())
	}
	hasUsr := false
	for _, o := range img.Overlays[1:] {
		hasUsr = hasUsr || o.Target == "/usr" && o.Lower[0] == "/usr"
	}
	if !hasUsr {
		t.Errorf("no /usr overlay in %+v", img.Overlays)
	}
	// A second store on the same dir reuses the skeleton.
	s2, err := NewStore(dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	img2, _ := s2.Resolve(t.Context(), HostRef)
	if img2.Overlays[0].Lower[0] != root {
		t.Errorf("skeleton rebuilt: %s vs %s", img2.Overlays[0].Lower[0], root)
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "host"))
	if len(entries) != 1 {
		t.Errorf("%d skeletons, want 1", len(entries))
	}
}
