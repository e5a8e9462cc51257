package image

import (
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/chaserhq/chaser/internal/userns"
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

// TestHostImageRemapped checks the host image of a store for a remapped
// range: a skeleton owned by the range, and /usr as a lower layer through
// an idmapped mount that Close removes.
func TestHostImageRemapped(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (chown, idmapped mounts); CI runs as root")
	}
	m := userns.Remap{Base: 100000, Size: 65536}
	dir := t.TempDir()
	s, err := NewStore(dir, slog.New(slog.DiscardHandler), WithRemap(m))
	if err != nil {
		t.Fatal(err)
	}
	img, _ := s.Resolve(t.Context(), HostRef)
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(img.Overlays[0].Lower[0], "etc", "passwd"), &st); err != nil || st.Uid != m.Base || st.Gid != m.Base {
		t.Errorf("skeleton's etc/passwd: %d:%d, %v; want %d", st.Uid, st.Gid, err, m.Base)
	}
	var usr string
	for _, o := range img.Overlays[1:] {
		if o.Target == "/usr" {
			usr = o.Lower[0]
		}
	}
	if usr == "" || usr == "/usr" {
		t.Fatalf("/usr lower = %q; want an idmapped mount of /usr", usr)
	}
	if err := unix.Stat(filepath.Join(usr, "bin"), &st); err != nil || st.Uid != m.Base {
		t.Errorf("%s/bin: owner %d, %v; want %d (host root shifted)", usr, st.Uid, err, m.Base)
	}
	// A second store (a restart) replaces the earlier mount, not stacks on it.
	s2, err := NewStore(dir, slog.New(slog.DiscardHandler), WithRemap(m))
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := os.Stat(filepath.Join(usr, "bin")); !os.IsNotExist(err) {
		t.Errorf("after Close %s still shows /usr: %v", usr, err)
	}
}
