//go:build linux

package fs

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/errdefs"
)

// entry is one tar entry of a test archive.
type entry struct {
	name, body, link string
	typ              byte
	mode             int64
	size             int64 // announced size when it differs from body
}

func archive(t *testing.T, entries ...entry) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Linkname: e.link, ModTime: time.Unix(1700000000, 0)}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if e.typ == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	tw.Close()
	return &buf
}

func errPaths(res api.ArchiveResult) map[string]string {
	m := map[string]string{}
	for _, e := range res.Errors {
		m[e.Path] = e.Code
	}
	return m
}

func TestExtractWritesTreeAndRefusesEscapes(t *testing.T) {
	t.Run("openat2", extractEscapes)
	// Without openat2 (Linux < 5.6, old gVisor) the walk follows no
	// symlink at all: stricter, and still nothing outside is touched.
	t.Run("fallback", func(t *testing.T) {
		old := noOpenat2.Load()
		noOpenat2.Store(true)
		defer noOpenat2.Store(old)
		extractEscapes(t)
	})
}

func extractEscapes(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "ws")
	outside := filepath.Join(base, "outside")
	os.Mkdir(outside, 0o755)
	os.MkdirAll(root, 0o755)
	os.Symlink(outside, filepath.Join(root, "escape"))      // symlinked parent pointing outside
	os.Symlink("../outside", filepath.Join(root, "rel-up")) // relative, outside too
	res, err := Extract(t.Context(), root, archive(t,
		entry{name: "src/", typ: tar.TypeDir, mode: 0o750},
		entry{name: "src/main.go", typ: tar.TypeReg, body: "package main\n", mode: 0o640},
		entry{name: "./bin/run.sh", typ: tar.TypeReg, body: "#!/bin/sh\n", mode: 0o755},
		entry{name: "deep/er/f", typ: tar.TypeReg, body: "x"},
		entry{name: "link", typ: tar.TypeSymlink, link: "/etc/passwd"},
		entry{name: "../x", typ: tar.TypeReg, body: "evil"},
		entry{name: "/abs", typ: tar.TypeReg, body: "evil"},
		entry{name: "escape/f", typ: tar.TypeReg, body: "evil"},
		entry{name: "rel-up/f", typ: tar.TypeReg, body: "evil"},
		entry{name: "dev", typ: tar.TypeChar},
		entry{name: "after", typ: tar.TypeReg, body: "still applied"},
	), 1<<20, Owner{})
	if err != nil {
		t.Fatal(err)
	}
	var written []string
	for _, w := range res.Written {
		written = append(written, w.Path+":"+w.Type)
	}
	if got := strings.Join(written, ","); got != "src:dir,src/main.go:file,bin/run.sh:file,deep/er/f:file,link:symlink,after:file" {
		t.Fatalf("written %s", got)
	}
	ep := errPaths(res)
	for _, p := range []string{"../x", "/abs", "escape/f", "rel-up/f", "dev"} {
		if ep[p] != "invalid_argument" {
			t.Errorf("%s: error %q, want invalid_argument (errors %v)", p, ep[p], res.Errors)
		}
	}
	if n := names(t, outside); len(n) != 0 {
		t.Fatalf("wrote outside the root: %v", n)
	}
	if _, err := os.Stat(filepath.Join(base, "x")); err == nil {
		t.Fatal("../x was written")
	}
	if _, err := os.Stat("/abs"); err == nil {
		t.Fatal("/abs was written")
	}
	if got := mustRead(t, filepath.Join(root, "src/main.go")); got != "package main\n" {
		t.Fatalf("content %q", got)
	}
	for p, want := range map[string]os.FileMode{"src": 0o750, "src/main.go": 0o640, "bin/run.sh": 0o755, "deep/er": 0o755} {
		fi, err := os.Lstat(filepath.Join(root, p))
		if err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, %v; want %v", p, fi.Mode(), err, want)
		}
	}
	if fi, _ := os.Stat(filepath.Join(root, "src/main.go")); !fi.ModTime().Equal(time.Unix(1700000000, 0)) {
		t.Errorf("mtime %v", fi.ModTime())
	}
	if target, err := os.Readlink(filepath.Join(root, "link")); err != nil || target != "/etc/passwd" {
		t.Fatalf("symlink %q %v", target, err)
	}
	if res.Bytes != int64(len("package main\n#!/bin/sh\nx")+len("still applied")) {
		t.Fatalf("bytes %d", res.Bytes)
	}
}

func TestExtractReplacesAtomicallyWhateverIsThere(t *testing.T) {
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "f"), []byte("old"), 0o600)
	os.MkdirAll(filepath.Join(root, "wasdir/sub"), 0o755)
	os.WriteFile(filepath.Join(root, "wasdir/sub/x"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(root, "wasfile"), []byte("x"), 0o644)
	target := filepath.Join(root, "target")
	os.WriteFile(target, []byte("keep"), 0o644)
	os.Symlink(target, filepath.Join(root, "wasLink"))
	res, err := Extract(t.Context(), root, archive(t,
		entry{name: "f", typ: tar.TypeReg, body: "new"},
		entry{name: "wasdir", typ: tar.TypeReg, body: "now a file"},
		entry{name: "wasfile", typ: tar.TypeDir, mode: 0o755},
		entry{name: "wasLink", typ: tar.TypeReg, body: "not through the link"},
	), 1<<20, Owner{})
	if err != nil || len(res.Errors) != 0 {
		t.Fatalf("%+v %v", res, err)
	}
	if got := mustRead(t, filepath.Join(root, "f")); got != "new" {
		t.Fatalf("f %q", got)
	}
	if fi, _ := os.Stat(filepath.Join(root, "f")); fi.Mode().Perm() != 0o644 {
		t.Fatalf("f mode %v: the archive's mode wins", fi.Mode())
	}
	if got := mustRead(t, filepath.Join(root, "wasdir")); got != "now a file" {
		t.Fatalf("wasdir %q", got)
	}
	if fi, err := os.Lstat(filepath.Join(root, "wasfile")); err != nil || !fi.IsDir() {
		t.Fatalf("wasfile %v %v", fi, err)
	}
	if got := mustRead(t, target); got != "keep" {
		t.Fatalf("wrote through a symlink: %q", got)
	}
	// No temporary file is left.
	for _, n := range names(t, root) {
		if strings.Contains(n, ".chaser-") {
			t.Fatalf("left behind: %s", n)
		}
	}
}

func TestExtractSkipsOverLimitEntryAndGoesOn(t *testing.T) {
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "big"), []byte("old"), 0o644)
	res, err := Extract(t.Context(), root, archive(t,
		entry{name: "small", typ: tar.TypeReg, body: "ok"},
		entry{name: "big", typ: tar.TypeReg, body: strings.Repeat("z", 2048)},
		entry{name: "next", typ: tar.TypeReg, body: "ok too"},
	), 1024, Owner{})
	if err != nil {
		t.Fatal(err)
	}
	if ep := errPaths(res); ep["big"] != "too_large" || len(ep) != 1 {
		t.Fatalf("errors %+v", res.Errors)
	}
	if len(res.Written) != 2 || mustRead(t, filepath.Join(root, "next")) != "ok too" {
		t.Fatalf("written %+v", res.Written)
	}
	if got := mustRead(t, filepath.Join(root, "big")); got != "old" {
		t.Fatalf("over-limit entry changed the file: %q", got)
	}
}

func TestExtractCutStreamKeepsCompleteEntries(t *testing.T) {
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "b"), []byte("old"), 0o644)
	full := archive(t, entry{name: "a", typ: tar.TypeReg, body: "first"}, entry{name: "b", typ: tar.TypeReg, body: strings.Repeat("n", 4000)}).Bytes()
	cut := bytes.NewReader(full[:512+512+512+1000]) // a's header+data, b's header, part of b
	res, err := Extract(t.Context(), root, cut, 1<<20, Owner{})
	if !isClass(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("cut stream: %v", err)
	}
	if mustRead(t, filepath.Join(root, "a")) != "first" || mustRead(t, filepath.Join(root, "b")) != "old" || len(res.Written) != 1 {
		t.Fatalf("after a cut stream: %+v", res)
	}
	for _, n := range names(t, root) {
		if strings.Contains(n, ".chaser-") {
			t.Fatalf("left behind: %s", n)
		}
	}
}

// isClass reports whether err is of class (nil is of none).
func isClass(err, class error) bool {
	if err == nil {
		return false
	}
	code, _ := errdefs.Code(err)
	want, _ := errdefs.Code(class)
	return code == want
}

func TestExtractRefusesReservedRoot(t *testing.T) {
	_, err := Extract(t.Context(), "/.chaser/x", archive(t, entry{name: "a", typ: tar.TypeReg, body: "x"}), 0, Owner{})
	wantClass(t, err, errdefs.ErrPermissionDenied)
}

func TestManifestHashesAndPrune(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "ws")
	os.MkdirAll(filepath.Join(root, "a/b"), 0o755)
	os.WriteFile(filepath.Join(root, "a/b/f"), []byte("hello"), 0o600)
	os.WriteFile(filepath.Join(root, "top"), []byte("t"), 0o644)
	os.MkdirAll(filepath.Join(base, "outside"), 0o755)
	os.WriteFile(filepath.Join(base, "outside/secret"), []byte("s"), 0o644)
	os.Symlink("../outside", filepath.Join(root, "out"))

	var got []api.ManifestEntry
	if err := Manifest(t.Context(), root, true, func(e api.ManifestEntry) error { got = append(got, e); return nil }); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("hello"))
	var desc []string
	for _, e := range got {
		desc = append(desc, e.Path+":"+e.Type+":"+e.Mode+":"+e.LinkTarget)
	}
	if strings.Join(desc, ",") != "a:dir:0755:,a/b:dir:0755:,a/b/f:file:0600:,out:symlink:0777:../outside,top:file:0644:" {
		t.Fatalf("manifest %v", desc)
	}
	if got[2].SHA256 != hex.EncodeToString(sum[:]) || got[2].Size != 5 {
		t.Fatalf("file entry %+v", got[2])
	}
	got = nil
	Manifest(t.Context(), root, false, func(e api.ManifestEntry) error { got = append(got, e); return nil })
	if got[2].SHA256 != "" {
		t.Fatalf("hash=false hashed: %+v", got[2])
	}
	if err := Manifest(t.Context(), filepath.Join(base, "missing"), false, func(api.ManifestEntry) error { return nil }); !isClass(err, errdefs.ErrNotFound) {
		t.Fatalf("missing root: %v", err)
	}

	h, err := HashFiles(t.Context(), root, []string{"a/b/f", "top", "missing", "a", "out/secret"})
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 2 || h["a/b/f"] != hex.EncodeToString(sum[:]) {
		t.Fatalf("hashes %v (a file outside through a symlink must not be hashed)", h)
	}
	if _, err := HashFiles(t.Context(), root, []string{"../outside/secret"}); !isClass(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("hash of ..: %v", err)
	}

	res, err := Prune(root, []string{"a", "top", "missing/x", "out/secret", "../outside", "/abs", "out"})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(res.Removed)
	if strings.Join(res.Removed, ",") != "a,missing/x,out,top" {
		t.Fatalf("removed %v errors %v", res.Removed, res.Errors)
	}
	ep := map[string]string{}
	for _, e := range res.Errors {
		ep[e.Path] = e.Code
	}
	if ep["out/secret"] != "invalid_argument" || ep["../outside"] != "invalid_argument" || ep["/abs"] != "invalid_argument" {
		t.Fatalf("errors %v", res.Errors)
	}
	if n := names(t, root); len(n) != 0 {
		t.Fatalf("left in root: %v", n)
	}
	if mustRead(t, filepath.Join(base, "outside/secret")) != "s" {
		t.Fatal("prune reached outside the root")
	}
}

// A reader in the sandbox sees the old or the new file, never a mix or a
// truncated one, while archives replace it.
func TestExtractReplacementIsAtomicForReaders(t *testing.T) {
	root := t.TempDir()
	p := filepath.Join(root, "f")
	versions := []string{strings.Repeat("a", 256<<10), strings.Repeat("b", 512<<10)}
	os.WriteFile(p, []byte(versions[0]), 0o644)
	stop := make(chan struct{})
	bad := make(chan string, 1)
	go func() {
		for {
			select {
			case <-stop:
				close(bad)
				return
			default:
			}
			b, err := os.ReadFile(p)
			if err != nil {
				bad <- err.Error()
				return
			}
			if s := string(b); s != versions[0] && s != versions[1] {
				bad <- fmt.Sprintf("read %d bytes of a partial file", len(b))
				return
			}
		}
	}()
	for i := 0; i < 40; i++ {
		if _, err := Extract(t.Context(), root, archive(t, entry{name: "f", typ: tar.TypeReg, body: versions[i%2]}), 1<<20, Owner{}); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	if msg, ok := <-bad; ok {
		t.Fatal(msg)
	}
}

// TestNewEntriesBelongToOwner: what Write, Mkdir and Extract create
// (parents included) belongs to the owner asked for; a replaced file keeps
// its own.
func TestNewEntriesBelongToOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: giving files away needs root; CI runs as root")
	}
	dir := t.TempDir()
	o := Owner{UID: 1234, GID: 2345}
	owner := func(p string) string {
		t.Helper()
		fi, err := os.Lstat(filepath.Join(dir, p))
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		return fmt.Sprintf("%d:%d", st.Uid, st.Gid)
	}
	if _, err := write(t, filepath.Join(dir, "w", "x", "f"), []byte("1"), WriteOptions{Owner: o}); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "rootfile"), []byte("r"), 0o644)
	if _, err := write(t, filepath.Join(dir, "rootfile"), []byte("2"), WriteOptions{Owner: o}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Mkdir(filepath.Join(dir, "m", "n"), "", o); err != nil {
		t.Fatal(err)
	}
	if _, err := Extract(t.Context(), filepath.Join(dir, "e"), archive(t,
		entry{name: "d/", typ: tar.TypeDir},
		entry{name: "d/f", typ: tar.TypeReg, body: "x"},
		entry{name: "p/q/f", typ: tar.TypeReg, body: "y"},
		entry{name: "l", typ: tar.TypeSymlink, link: "d/f"},
	), 1<<20, o); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"w", "w/x", "w/x/f", "m", "m/n", "e", "e/d", "e/d/f", "e/p", "e/p/q", "e/p/q/f", "e/l"} {
		if got := owner(p); got != "1234:2345" {
			t.Errorf("%s belongs to %s, want 1234:2345", p, got)
		}
	}
	if got := owner("rootfile"); got != "0:0" {
		t.Errorf("a replaced file changed owner to %s", got)
	}
}
