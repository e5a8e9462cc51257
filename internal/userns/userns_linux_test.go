package userns

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func owner(t *testing.T, p string) (uint32, uint32, uint32) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Uid, st.Gid, st.Mode & 0o7777
}

func TestOwnShiftsATreeOnce(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (chown)")
	}
	m := Remap{Base: 100000, Size: 65536}
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	os.MkdirAll(filepath.Join(dir, "home", "app"), 0o755)
	os.WriteFile(filepath.Join(dir, "home", "app", "f"), nil, 0o644)
	os.Chown(filepath.Join(dir, "home", "app"), 1000, 1000)
	os.Chown(filepath.Join(dir, "home", "app", "f"), 1000, 1000)
	os.WriteFile(filepath.Join(dir, "suid"), nil, 0o755)
	unix.Chmod(filepath.Join(dir, "suid"), 0o4755)
	os.Symlink("home", filepath.Join(dir, "link"))
	os.WriteFile(filepath.Join(dir, "beyond"), nil, 0o644)
	os.Chown(filepath.Join(dir, "beyond"), 70000, 70000)

	for range 2 { // the second Own finds the root shifted and does nothing
		if err := m.Own(dir); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		path     string
		uid, gid uint32
		mode     uint32
	}{
		{".", 100000, 100000, 0o755},
		{"home/app", 101000, 101000, 0o755},
		{"home/app/f", 101000, 101000, 0o644},
		{"suid", 100000, 100000, 0o4755},
		{"beyond", 70000, 70000, 0o644},
	} {
		uid, gid, mode := owner(t, filepath.Join(dir, c.path))
		if uid != c.uid || gid != c.gid || mode != c.mode {
			t.Errorf("%s: %d:%d %o; want %d:%d %o", c.path, uid, gid, mode, c.uid, c.gid, c.mode)
		}
	}
	if uid, _, _ := owner(t, filepath.Join(dir, "link")); uid != 100000 {
		t.Errorf("symlink owner %d; want 100000", uid)
	}
}

func TestIDMap(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (mounts)")
	}
	m := Remap{Base: 100000, Size: 65536}
	src, dst := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(src, "f"), []byte("x"), 0o644)
	os.Chown(filepath.Join(src, "f"), 1000, 0)
	if err := m.IDMap(src, dst); err != nil {
		t.Fatal(err)
	}
	defer Unmount(dst)
	if uid, gid, _ := owner(t, filepath.Join(dst, "f")); uid != 101000 || gid != 100000 {
		t.Errorf("through the idmapped mount: %d:%d; want 101000:100000", uid, gid)
	}
	if uid, _, _ := owner(t, filepath.Join(src, "f")); uid != 1000 {
		t.Errorf("source changed: %d", uid)
	}
	if err := os.WriteFile(filepath.Join(dst, "g"), nil, 0o644); err == nil {
		t.Error("the idmapped mount is writable")
	}
	if err := Unmount(dst); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dst, "f")); !os.IsNotExist(err) {
		t.Errorf("after Unmount: %v", err)
	}
}

// BenchmarkIDMap measures an idmapped mount of a directory (the user
// namespace made for it included): what a per-sandbox range (one such
// mount per image layer per sandbox) would add to every create.
func BenchmarkIDMap(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root (mounts)")
	}
	m := Remap{Base: 100000, Size: 65536}
	src, dst := b.TempDir(), b.TempDir()
	for i := 0; i < b.N; i++ {
		if err := m.IDMap(src, dst); err != nil {
			b.Fatal(err)
		}
		if err := Unmount(dst); err != nil {
			b.Fatal(err)
		}
	}
}
