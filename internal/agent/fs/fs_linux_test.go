//go:build linux

package fs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/errdefs"
)

func write(t *testing.T, p string, data []byte, o WriteOptions) (api.FileInfo, error) {
	t.Helper()
	if o.Size == 0 {
		o.Size = -1
	}
	return Write(t.Context(), p, bytes.NewReader(data), o)
}

func mustRead(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// names lists dir's entries, to prove nothing (no temp file) is left.
func names(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

func wantClass(t *testing.T, err, class error) {
	t.Helper()
	if !errors.Is(err, class) {
		t.Fatalf("error %v, want class %v", err, class)
	}
}

func TestClean(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"/workspace/a.js", "/workspace/a.js", true},
		{"/workspace//a/", "/workspace/a", true},
		{"/", "/", true},
		{"/a/./b", "/a/b", true},
		{"", "", false},
		{"workspace/a", "", false},
		{"./a", "", false},
		{"/workspace/../etc/passwd", "", false},
		{"/..", "", false},
		{"/a\x00b", "", false},
		{"/" + strings.Repeat("a", 5000), "", false},
	} {
		got, err := Clean(tc.in)
		if tc.ok && (err != nil || got != tc.want) {
			t.Errorf("Clean(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
		if !tc.ok && !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("Clean(%q) = %q, %v; want invalid argument", tc.in, got, err)
		}
	}
}

func TestWriteCreatesParentsAndReportsDigest(t *testing.T) {
	dir := t.TempDir()
	data := []byte("console.log('hi')\n")
	p := filepath.Join(dir, "a", "b", "app.js")
	info, err := write(t, p, data, WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	if info.SHA256 != hex.EncodeToString(sum[:]) || info.Size != int64(len(data)) || info.Mode != "0644" || info.Type != api.FileTypeFile || info.Path != p {
		t.Fatalf("info %+v", info)
	}
	if got := mustRead(t, p); got != string(data) {
		t.Fatalf("content %q", got)
	}
	fi, _ := os.Stat(filepath.Join(dir, "a"))
	if fi.Mode().Perm() != 0o755 {
		t.Fatalf("parent mode %v", fi.Mode())
	}
	mode := uint32(0o750)
	if info, err = write(t, p, []byte("x"), WriteOptions{Mode: &mode}); err != nil || info.Mode != "0750" {
		t.Fatalf("mode: %+v %v", info, err)
	}
	// Replacing keeps the mode of the file replaced.
	if info, err = write(t, p, []byte("y"), WriteOptions{}); err != nil || info.Mode != "0750" {
		t.Fatalf("kept mode: %+v %v", info, err)
	}
	if n := names(t, filepath.Join(dir, "a", "b")); len(n) != 1 {
		t.Fatalf("left behind: %v", n)
	}
}

func TestWriteRefusedLeavesOldFileAndNothingElse(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("z"), 1025)
	for _, tc := range []struct {
		name  string
		path  string
		body  io.Reader
		o     WriteOptions
		class error
	}{
		{"over limit, size unknown", p, bytes.NewReader(big), WriteOptions{Max: 1024, Size: -1}, errdefs.ErrTooLarge},
		{"over limit, size announced", p, bytes.NewReader(big), WriteOptions{Max: 1024, Size: 1025}, errdefs.ErrTooLarge},
		{"interrupted", p, io.MultiReader(bytes.NewReader([]byte("new")), errReader{io.ErrUnexpectedEOF}), WriteOptions{Size: -1}, errdefs.ErrInvalidArgument},
		{"short body", p, bytes.NewReader([]byte("ne")), WriteOptions{Size: 3}, errdefs.ErrInvalidArgument},
		{"over limit in new parents", filepath.Join(dir, "new", "sub", "f"), bytes.NewReader(big), WriteOptions{Max: 1024, Size: -1}, errdefs.ErrTooLarge},
		{"interrupted in new parents", filepath.Join(dir, "new", "f"), errReader{io.ErrUnexpectedEOF}, WriteOptions{Size: -1}, errdefs.ErrInvalidArgument},
		{"directory at target", dir, bytes.NewReader([]byte("x")), WriteOptions{Size: -1}, errdefs.ErrInvalidArgument},
		{"relative", "f", bytes.NewReader([]byte("x")), WriteOptions{Size: -1}, errdefs.ErrInvalidArgument},
		{"dotdot", dir + "/../f", bytes.NewReader([]byte("x")), WriteOptions{Size: -1}, errdefs.ErrInvalidArgument},
		{"agent dir", "/.chaser/agent", bytes.NewReader([]byte("x")), WriteOptions{Size: -1}, errdefs.ErrPermissionDenied},
		{"read-only fs", "/sys/chaser-test", bytes.NewReader([]byte("x")), WriteOptions{Size: -1}, errdefs.ErrPermissionDenied},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Write(t.Context(), tc.path, tc.body, tc.o)
			wantClass(t, err, tc.class)
			if got := mustRead(t, p); got != "old" {
				t.Fatalf("old file changed: %q", got)
			}
			if n := names(t, dir); len(n) != 1 || n[0] != "f" {
				t.Fatalf("left behind: %v", n)
			}
		})
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func TestWriteCancelledContext(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := Write(ctx, filepath.Join(dir, "f"), bytes.NewReader([]byte("x")), WriteOptions{Size: -1}); err == nil {
		t.Fatal("write with a cancelled context succeeded")
	}
	if n := names(t, dir); len(n) != 0 {
		t.Fatalf("left behind: %v", n)
	}
}

func TestWriteReplacesSymlinkNotItsTarget(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	os.WriteFile(target, []byte("keep"), 0o644)
	link := filepath.Join(dir, "link")
	os.Symlink(target, link)
	if _, err := write(t, link, []byte("new"), WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := mustRead(t, target); got != "keep" {
		t.Fatalf("wrote through the symlink: %q", got)
	}
	if fi, _ := os.Lstat(link); !fi.Mode().IsRegular() {
		t.Fatalf("link not replaced: %v", fi.Mode())
	}
}

// A symlink planted in the sandbox must not make the agent go through its
// own /proc magic links (its root, its descriptors).
func TestMagicLinksAreRefused(t *testing.T) {
	dir := t.TempDir()
	os.Symlink("/proc/self/root", filepath.Join(dir, "root"))
	os.Symlink("/proc/self/fd/0", filepath.Join(dir, "fd0"))
	os.Symlink("/proc/self/cwd", filepath.Join(dir, "cwd"))
	for _, p := range []string{"root/etc/hostname", "fd0", "cwd/fs.go"} {
		_, _, err := Open(filepath.Join(dir, p), 0)
		wantClass(t, err, errdefs.ErrInvalidArgument)
		if !strings.Contains(err.Error(), "magic link") {
			t.Fatalf("%s: %v", p, err)
		}
	}
	_, err := write(t, filepath.Join(dir, "root", "tmp", "chaser-escape"), []byte("x"), WriteOptions{})
	wantClass(t, err, errdefs.ErrInvalidArgument)
	if _, err := os.Stat("/tmp/chaser-escape"); err == nil {
		t.Fatal("wrote through /proc/self/root")
	}
	_, err = List(filepath.Join(dir, "root"), false)
	wantClass(t, err, errdefs.ErrInvalidArgument)
	// The links themselves can be listed, inspected and removed.
	info, err := Stat(filepath.Join(dir, "fd0"))
	if err != nil || info.Type != api.FileTypeSymlink || info.LinkTarget != "/proc/self/fd/0" {
		t.Fatalf("stat link: %+v %v", info, err)
	}
	if err := Remove(filepath.Join(dir, "root"), true); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("/etc/hostname"); err != nil {
		t.Fatalf("removing the link touched its target: %v", err)
	}
}

func TestOpen(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	os.WriteFile(p, []byte("hello"), 0o644)
	os.Symlink("f", filepath.Join(dir, "rel"))
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"f", "rel"} {
		f, info, err := Open(filepath.Join(dir, name), 0)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(f)
		f.Close()
		if string(b) != "hello" || info.Size != 5 {
			t.Fatalf("%s: %q %+v", name, b, info)
		}
	}
	for _, tc := range []struct {
		p     string
		max   int64
		class error
	}{
		{filepath.Join(dir, "missing"), 0, errdefs.ErrNotFound},
		{dir, 0, errdefs.ErrInvalidArgument},
		{fifo, 0, errdefs.ErrInvalidArgument},
		{p, 4, errdefs.ErrTooLarge},
		{"f", 0, errdefs.ErrInvalidArgument},
		{filepath.Join(p, "x"), 0, errdefs.ErrInvalidArgument},
	} {
		_, _, err := Open(tc.p, tc.max)
		wantClass(t, err, tc.class)
	}
}

func TestListStatMkdirRemoveMove(t *testing.T) {
	dir := t.TempDir()
	if _, created, err := Mkdir(filepath.Join(dir, "a", "b"), "0700", Owner{}); err != nil || !created {
		t.Fatal(created, err)
	}
	if _, created, err := Mkdir(filepath.Join(dir, "a", "b"), "", Owner{}); err != nil || created {
		t.Fatalf("second mkdir: %v %v", created, err)
	}
	write(t, filepath.Join(dir, "a", "b", "f"), []byte("12345"), WriteOptions{})
	write(t, filepath.Join(dir, "a", "g"), []byte("1"), WriteOptions{})
	os.Symlink(filepath.Join(dir, "a"), filepath.Join(dir, "a", "loop"))
	_, _, err := Mkdir(filepath.Join(dir, "a", "g"), "", Owner{})
	wantClass(t, err, errdefs.ErrAlreadyExists)

	l, err := List(filepath.Join(dir, "a"), false)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range l.Entries {
		got = append(got, e.Name+":"+e.Type)
	}
	if strings.Join(got, ",") != "b:dir,g:file,loop:symlink" {
		t.Fatalf("list: %v", got)
	}
	if l.Entries[0].Mode != "0700" {
		t.Fatalf("mkdir mode: %+v", l.Entries[0])
	}
	l, err = List(filepath.Join(dir, "a"), true)
	if err != nil {
		t.Fatal(err)
	}
	got = nil
	for _, e := range l.Entries {
		got = append(got, strings.TrimPrefix(e.Path, dir))
	}
	// The symlinked directory is listed, not followed.
	if strings.Join(got, ",") != "/a/b,/a/b/f,/a/g,/a/loop" {
		t.Fatalf("recursive list: %v", got)
	}
	_, err = List(filepath.Join(dir, "a", "g"), false)
	wantClass(t, err, errdefs.ErrInvalidArgument)
	_, err = List(filepath.Join(dir, "nope"), false)
	wantClass(t, err, errdefs.ErrNotFound)

	info, err := Stat(filepath.Join(dir, "a", "b", "f"))
	if err != nil || info.Size != 5 || info.Type != api.FileTypeFile {
		t.Fatalf("stat: %+v %v", info, err)
	}
	if info, err := Stat("/"); err != nil || info.Type != api.FileTypeDir {
		t.Fatalf("stat /: %+v %v", info, err)
	}

	// Move: refuses to replace unless told, then replaces.
	_, err = Move(api.MoveRequest{From: filepath.Join(dir, "a", "g"), To: filepath.Join(dir, "a", "b", "f")})
	wantClass(t, err, errdefs.ErrAlreadyExists)
	if mustRead(t, filepath.Join(dir, "a", "b", "f")) != "12345" {
		t.Fatal("refused move changed the destination")
	}
	if _, err := Move(api.MoveRequest{From: filepath.Join(dir, "a", "g"), To: filepath.Join(dir, "a", "b", "f"), Overwrite: true}); err != nil {
		t.Fatal(err)
	}
	if mustRead(t, filepath.Join(dir, "a", "b", "f")) != "1" {
		t.Fatal("move did not replace")
	}
	_, err = Move(api.MoveRequest{From: filepath.Join(dir, "a"), To: filepath.Join(dir, "a", "b", "c")})
	wantClass(t, err, errdefs.ErrInvalidArgument)
	_, err = Move(api.MoveRequest{From: filepath.Join(dir, "nope"), To: filepath.Join(dir, "x")})
	wantClass(t, err, errdefs.ErrNotFound)
	_, err = Move(api.MoveRequest{From: filepath.Join(dir, "a"), To: filepath.Join(dir, "x", "y")})
	wantClass(t, err, errdefs.ErrNotFound)
	if info, err := Move(api.MoveRequest{From: filepath.Join(dir, "a"), To: filepath.Join(dir, "c")}); err != nil || info.Type != api.FileTypeDir {
		t.Fatalf("move dir: %+v %v", info, err)
	}

	// Remove: a non-empty directory needs recursive.
	wantClass(t, Remove(filepath.Join(dir, "c"), false), errdefs.ErrFailedPrecondition)
	wantClass(t, Remove(filepath.Join(dir, "nope"), false), errdefs.ErrNotFound)
	wantClass(t, Remove("/", true), errdefs.ErrInvalidArgument)
	wantClass(t, Remove("/.chaser", true), errdefs.ErrPermissionDenied)
	if err := Remove(filepath.Join(dir, "c", "b", "f"), false); err != nil {
		t.Fatal(err)
	}
	if err := Remove(filepath.Join(dir, "c"), true); err != nil {
		t.Fatal(err)
	}
	if n := names(t, dir); len(n) != 0 {
		t.Fatalf("left: %v", n)
	}
}

func TestListTruncates(t *testing.T) {
	if testing.Short() {
		t.Skip("creates MaxEntries files")
	}
	dir := t.TempDir()
	for i := 0; i <= MaxEntries; i++ {
		f, err := os.Create(filepath.Join(dir, strconv.Itoa(i)))
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	l, err := List(dir, false)
	if err != nil || !l.Truncated || len(l.Entries) != MaxEntries {
		t.Fatalf("truncated=%v entries=%d err=%v", l.Truncated, len(l.Entries), err)
	}
}

func TestHelpers(t *testing.T) {
	if m, ok, err := ParseMode("755"); err != nil || !ok || m != 0o755 {
		t.Fatal(m, ok, err)
	}
	for _, bad := range []string{"9", "rwx", "17777", "-1"} {
		if _, _, err := ParseMode(bad); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("ParseMode(%q): %v", bad, err)
		}
	}
	for n, want := range map[int64]string{512: "512 B", 16 << 20: "16 MiB", 1536: "1.5 KiB", 1 << 30: "1 GiB"} {
		if got := HumanSize(n); got != want {
			t.Errorf("HumanSize(%d) = %q, want %q", n, got, want)
		}
	}
}
