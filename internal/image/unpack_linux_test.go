package image

import (
	"archive/tar"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/chaserhq/chaser/internal/errdefs"
	"github.com/chaserhq/chaser/internal/userns"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: unpacking needs root (chown, whiteout device nodes, trusted xattrs); CI runs as root")
	}
}

// tarEntry is one entry of a tar stream built by a test.
type tarEntry struct {
	name     string
	typ      byte
	mode     int64
	uid, gid int
	body     string
	link     string
	major    int64
}

func buildTar(t testing.TB, entries ...tarEntry) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Uid: e.uid, Gid: e.gid,
			Linkname: e.link, ModTime: time.Unix(1700000000, 0), Devmajor: e.major, Format: tar.FormatPAX}
		if e.typ == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return &buf
}

func TestUnpackKeepsFiles(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	st, err := Unpack(buildTar(t,
		tarEntry{name: "./", typ: tar.TypeDir, mode: 0o755},
		tarEntry{name: "bin/", typ: tar.TypeDir, mode: 0o755},
		tarEntry{name: "bin/tool", typ: tar.TypeReg, mode: 0o4755, uid: 0, gid: 0, body: "#!/bin/sh\n"},
		tarEntry{name: "home/u/", typ: tar.TypeDir, mode: 0o700, uid: 1000, gid: 1001},
		tarEntry{name: "home/u/notes", typ: tar.TypeReg, mode: 0o600, uid: 1000, gid: 1001, body: "hi"},
		tarEntry{name: "etc/alt", typ: tar.TypeSymlink, link: "/usr/bin/busybox"},
		tarEntry{name: "bin/tool2", typ: tar.TypeLink, link: "bin/tool"},
		tarEntry{name: "run/fifo", typ: tar.TypeFifo, mode: 0o600},
		// A repeated name replaces the earlier entry.
		tarEntry{name: "etc/alt", typ: tar.TypeReg, body: "second"},
	), dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Entries != 9 || st.Bytes != int64(len("#!/bin/sh\n")+len("hi")+len("second")) {
		t.Errorf("stats %+v", st)
	}
	fi, err := os.Stat(filepath.Join(dir, "bin/tool"))
	if err != nil || fi.Mode()&os.ModeSetuid == 0 || fi.Mode().Perm() != 0o755 {
		t.Errorf("bin/tool mode %v, %v; want setuid 0755", fi.Mode(), err)
	}
	var s unix.Stat_t
	if err := unix.Lstat(filepath.Join(dir, "home/u/notes"), &s); err != nil || s.Uid != 1000 || s.Gid != 1001 || s.Mode&0o777 != 0o600 {
		t.Errorf("home/u/notes uid %d gid %d mode %o (%v)", s.Uid, s.Gid, s.Mode&0o777, err)
	}
	if err := unix.Lstat(filepath.Join(dir, "home/u"), &s); err != nil || s.Uid != 1000 || s.Mode&0o777 != 0o700 {
		t.Errorf("home/u uid %d mode %o (%v)", s.Uid, s.Mode&0o777, err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "etc/alt")); err != nil || string(b) != "second" {
		t.Errorf("etc/alt = %q, %v; want the later entry", b, err)
	}
	var a, b unix.Stat_t
	unix.Lstat(filepath.Join(dir, "bin/tool"), &a)
	unix.Lstat(filepath.Join(dir, "bin/tool2"), &b)
	if a.Ino != b.Ino {
		t.Error("bin/tool2 is not a hard link of bin/tool")
	}
	if fi, err := os.Lstat(filepath.Join(dir, "run/fifo")); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		t.Errorf("run/fifo: %v %v", fi, err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "bin/tool")); !fi.ModTime().Equal(time.Unix(1700000000, 0)) {
		t.Errorf("mtime %v not kept", fi.ModTime())
	}
}

func TestUnpackWhiteouts(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	_, err := Unpack(buildTar(t,
		tarEntry{name: "etc/", typ: tar.TypeDir, mode: 0o755},
		tarEntry{name: "etc/.wh.motd", typ: tar.TypeReg},
		tarEntry{name: "opt/app/", typ: tar.TypeDir, mode: 0o755},
		tarEntry{name: "opt/app/.wh..wh..opq", typ: tar.TypeReg},
		tarEntry{name: "opt/app/new", typ: tar.TypeReg, body: "new"},
		tarEntry{name: "var/.wh..wh.plnk", typ: tar.TypeReg},
		// Whiteout of a directory whose parent is not in the layer.
		tarEntry{name: "usr/share/.wh.doc", typ: tar.TypeReg},
	), dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"etc/motd", "usr/share/doc"} {
		var s unix.Stat_t
		if err := unix.Lstat(filepath.Join(dir, p), &s); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if s.Mode&unix.S_IFMT != unix.S_IFCHR || s.Rdev != 0 {
			t.Errorf("%s: mode %o rdev %d, want a 0:0 character device", p, s.Mode, s.Rdev)
		}
	}
	for _, p := range []string{"etc/.wh.motd", "opt/app/.wh..wh..opq", "var/.wh..wh.plnk"} {
		if _, err := os.Lstat(filepath.Join(dir, p)); !os.IsNotExist(err) {
			t.Errorf("%s exists in the unpacked layer", p)
		}
	}
	v := make([]byte, 8)
	n, err := unix.Lgetxattr(filepath.Join(dir, "opt/app"), opaqueXattr, v)
	if err != nil || string(v[:n]) != "y" {
		t.Errorf("opt/app opaque xattr = %q, %v", v[:n], err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "opt/app/new")); string(b) != "new" {
		t.Errorf("opt/app/new = %q", b)
	}
}

// TestUnpackSkipsDevices: device nodes (and hard links to them) are
// counted and never created; the rest of the layer unpacks.
func TestUnpackSkipsDevices(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	st, err := Unpack(buildTar(t,
		tarEntry{name: "dev/", typ: tar.TypeDir, mode: 0o755},
		tarEntry{name: "dev/mem", typ: tar.TypeChar, major: 1, mode: 0o640},
		tarEntry{name: "dev/sda", typ: tar.TypeBlock, major: 8},
		tarEntry{name: "dev/mem2", typ: tar.TypeLink, link: "dev/mem"},
		tarEntry{name: "etc/gone", typ: tar.TypeChar}, // 0:0: would be a whiteout
		tarEntry{name: "dev/fifo", typ: tar.TypeFifo},
		tarEntry{name: "etc/kept", typ: tar.TypeReg, body: "k"},
	), dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.SkippedDevices != 4 {
		t.Errorf("SkippedDevices = %d, want 4", st.SkippedDevices)
	}
	for _, p := range []string{"dev/mem", "dev/sda", "dev/mem2", "etc/gone"} {
		if _, err := os.Lstat(filepath.Join(dir, p)); !os.IsNotExist(err) {
			t.Errorf("%s was created (%v)", p, err)
		}
	}
	if fi, err := os.Lstat(filepath.Join(dir, "dev/fifo")); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		t.Errorf("dev/fifo: %v %v", fi, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "etc/kept")); string(b) != "k" {
		t.Errorf("etc/kept = %q", b)
	}
}

func TestUnpackRefuses(t *testing.T) {
	needRoot(t)
	for _, tc := range []struct {
		name    string
		entries []tarEntry
	}{
		{"dotdot", []tarEntry{{name: "../outside/pwned", typ: tar.TypeReg, body: "x"}}},
		{"dotdot inside", []tarEntry{{name: "a/../../outside/pwned", typ: tar.TypeReg, body: "x"}}},
		{"hardlink out", []tarEntry{{name: "pwned", typ: tar.TypeLink, link: "../outside/secret"}}},
		{"hardlink absolute to host file", []tarEntry{{name: "pwned", typ: tar.TypeLink, link: "/etc/hostname"}}},
		{"through relative symlink", []tarEntry{
			{name: "up", typ: tar.TypeSymlink, link: "../outside"},
			{name: "up/pwned", typ: tar.TypeReg, body: "x"}}},
		{"through absolute symlink", []tarEntry{
			{name: "abs", typ: tar.TypeSymlink, link: "OUTSIDE"},
			{name: "abs/pwned", typ: tar.TypeReg, body: "x"}}},
		{"whiteout through symlink", []tarEntry{
			{name: "up", typ: tar.TypeSymlink, link: "../outside"},
			{name: "up/.wh.secret", typ: tar.TypeReg}}},
		{"hardlink to a directory", []tarEntry{
			{name: "d/", typ: tar.TypeDir, mode: 0o755},
			{name: "l", typ: tar.TypeLink, link: "d"}}},
		{"file under a file", []tarEntry{
			{name: "f", typ: tar.TypeReg, body: "x"},
			{name: "f/g", typ: tar.TypeReg, body: "y"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := t.TempDir()
			outside := filepath.Join(base, "outside")
			os.Mkdir(outside, 0o755)
			os.WriteFile(filepath.Join(outside, "secret"), []byte("s"), 0o600)
			layer := filepath.Join(base, "layer")
			os.Mkdir(layer, 0o755)
			for i := range tc.entries {
				if tc.entries[i].link == "OUTSIDE" {
					tc.entries[i].link = outside
				}
			}
			_, err := Unpack(buildTar(t, tc.entries...), layer)
			if !errors.Is(err, errdefs.ErrUnprocessable) {
				t.Fatalf("err = %v, want ErrUnprocessable", err)
			}
			ents, _ := os.ReadDir(outside)
			if len(ents) != 1 || ents[0].Name() != "secret" {
				t.Errorf("outside dir changed: %v", ents)
			}
			if b, _ := os.ReadFile(filepath.Join(outside, "secret")); string(b) != "s" {
				t.Errorf("outside/secret changed: %q", b)
			}
		})
	}
}

func TestUnpackGarbage(t *testing.T) {
	needRoot(t)
	_, err := Unpack(bytes.NewReader(bytes.Repeat([]byte("not a tar "), 100)), t.TempDir())
	if !errors.Is(err, errdefs.ErrUnprocessable) {
		t.Fatalf("err = %v, want ErrUnprocessable", err)
	}
}

func TestUnpackShifted(t *testing.T) {
	needRoot(t)
	m := userns.Remap{Base: 100000, Size: 65536}
	dir := t.TempDir()
	_, err := UnpackShifted(buildTar(t,
		tarEntry{name: "./", typ: tar.TypeDir, mode: 0o755},
		tarEntry{name: "bin/", typ: tar.TypeDir, mode: 0o755},
		tarEntry{name: "bin/tool", typ: tar.TypeReg, mode: 0o4755, body: "#!/bin/sh\n"},
		tarEntry{name: "home/u/", typ: tar.TypeDir, mode: 0o700, uid: 1000, gid: 1001},
		tarEntry{name: "home/u/link", typ: tar.TypeSymlink, link: "/etc", uid: 1000, gid: 1001},
		tarEntry{name: "nobody", typ: tar.TypeReg, uid: 65534, gid: 65534},
	), dir, m)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path     string
		uid, gid uint32
		mode     uint32
	}{
		{".", 100000, 100000, 0o755},
		{"bin/tool", 100000, 100000, 0o4755},
		{"home/u", 101000, 101001, 0o700},
		{"home/u/link", 101000, 101001, 0o777},
		{"nobody", 165534, 165534, 0o644},
	} {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(dir, c.path), &st); err != nil {
			t.Fatal(err)
		}
		if st.Uid != c.uid || st.Gid != c.gid || st.Mode&0o7777 != c.mode {
			t.Errorf("%s: %d:%d %o; want %d:%d %o", c.path, st.Uid, st.Gid, st.Mode&0o7777, c.uid, c.gid, c.mode)
		}
	}

	// An owner the range cannot map refuses the layer, as Docker does.
	_, err = UnpackShifted(buildTar(t, tarEntry{name: "f", typ: tar.TypeReg, uid: 70000}), t.TempDir(), m)
	if !errors.Is(err, errdefs.ErrUnprocessable) {
		t.Fatalf("owner 70000 under a 65536-id range: %v; want ErrUnprocessable", err)
	}
}
