package mirror

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/chaserhq/chaser/api"
)

func TestDiff(t *testing.T) {
	file := func(size int64, mode uint32) Entry { return Entry{Type: api.FileTypeFile, Size: size, Mode: mode} }
	dir := Entry{Type: api.FileTypeDir, Mode: 0o755}
	local := Tree{
		"same":           file(3, 0o644), // same size and mode: compare hashes
		"grown":          file(4, 0o644),
		"chmod":          file(3, 0o755),
		"new":            file(1, 0o644),
		"d":              dir,
		"d/f":            file(1, 0o644),
		"link":           {Type: api.FileTypeSymlink, Link: "b"},
		"samelink":       {Type: api.FileTypeSymlink, Link: "a"},
		"wasdir":         file(1, 0o644), // a local file replaces a remote directory
		"dirnow":         dir,            // a local directory replaces a remote file
		"keepdir":        dir,
		"keepdir/inside": file(1, 0o644),
	}
	rfile := func(size int64, mode string) api.ManifestEntry {
		return api.ManifestEntry{Type: api.FileTypeFile, Size: size, Mode: mode}
	}
	remote := map[string]api.ManifestEntry{
		"same":            rfile(3, "0644"),
		"grown":           rfile(3, "0644"),
		"chmod":           rfile(3, "0644"),
		"d":               {Type: api.FileTypeDir, Mode: "0700"},
		"d/f":             rfile(1, "0644"),
		"link":            {Type: api.FileTypeSymlink, Mode: "0777", LinkTarget: "a"},
		"samelink":        {Type: api.FileTypeSymlink, Mode: "0777", LinkTarget: "a"},
		"wasdir":          {Type: api.FileTypeDir, Mode: "0755"},
		"wasdir/x":        rfile(1, "0644"),
		"dirnow":          rfile(1, "0644"),
		"keepdir":         {Type: api.FileTypeDir, Mode: "0755"},
		"keepdir/inside":  rfile(1, "0644"),
		"keepdir/stray":   rfile(1, "0644"),
		"gone":            {Type: api.FileTypeDir, Mode: "0755"},
		"gone/a":          rfile(1, "0644"),
		"gone/b/c":        rfile(1, "0644"),
		"node_modules":    {Type: api.FileTypeDir, Mode: "0755"},
		"node_modules/x":  rfile(1, "0644"),
		"app.log":         rfile(1, "0644"),
		"logs-dir":        {Type: api.FileTypeDir, Mode: "0755"},
		"logs-dir/a.log":  rfile(1, "0644"),
		"logs-dir/b.keep": rfile(1, "0644"),
	}
	m := NewMatcher()
	m.Add("", []byte("node_modules/\n*.log\n"))
	got := Diff(local, remote, m.Ignored)
	want := Plan{
		Upload: []string{"chmod", "d", "dirnow", "grown", "link", "new", "wasdir"},
		Check:  []string{"d/f", "keepdir/inside", "same"},
		// Ignored paths stay (node_modules/x, app.log, logs-dir/a.log,
		// and so logs-dir); a deleted directory's children are not
		// listed; wasdir/x goes with the upload of the file wasdir.
		Delete: []string{"gone", "keepdir/stray", "logs-dir/b.keep"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Diff:\n got %+v\nwant %+v", got, want)
	}

	changed := Changed([]string{"a", "b", "c"}, map[string]string{"a": "1", "b": "2", "c": "3"}, map[string]string{"a": "1", "b": "x"})
	if !reflect.DeepEqual(changed, []string{"b", "c"}) {
		t.Fatalf("Changed = %v", changed)
	}
}

func TestPrunable(t *testing.T) {
	m := NewMatcher()
	m.Add("", []byte("node_modules/\n"))
	dirs := map[string]bool{"a": true, "a/c": true, "pkg": true, "pkg/node_modules": true, "pkg/src": true}
	got := prunable([]string{"a-b", "a/c/d", "a", "a/c", "b/c", "b/cd", "pkg", "pkg/node_modules", "pkg/node_modules/x", "pkg/src", "pkg/src/f", "pkg/g"},
		func(rel string) bool { return dirs[rel] }, m.Ignored, func(rel string) bool { return rel == "b/cd" })
	// pkg holds ignored dependencies: kept, its other entries deleted.
	want := []string{"a", "a-b", "b/c", "pkg/g", "pkg/src"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("prunable = %v, want %v", got, want)
	}
}

func TestBatcher(t *testing.T) {
	t0 := time.Unix(1000, 0)
	b := newBatcher(150*time.Millisecond, time.Second)
	if !b.empty() || !b.due().IsZero() {
		t.Fatal("new batcher not empty")
	}
	b.add("a", t0)
	if d := b.due(); !d.Equal(t0.Add(150 * time.Millisecond)) {
		t.Fatalf("due %v: a quiet period after the last change", d)
	}
	// A steady stream keeps pushing the quiet deadline, up to the cap.
	for i := 1; i <= 20; i++ {
		b.add("b", t0.Add(time.Duration(i)*100*time.Millisecond))
	}
	if d := b.due(); !d.Equal(t0.Add(time.Second)) {
		t.Fatalf("due %v: capped at 1s after the first change", d)
	}
	b.add("a", t0)
	if got := b.take(); !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Fatalf("take = %v: each path once, sorted", got)
	}
	if !b.empty() {
		t.Fatal("not empty after take")
	}
	b.add("c", t0.Add(5*time.Second))
	if d := b.due(); !d.Equal(t0.Add(5*time.Second + 150*time.Millisecond)) {
		t.Fatalf("a new batch starts its own clock: %v", d)
	}
}

func TestScanAndTar(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "secret"), []byte("s"), 0o644)
	os.MkdirAll(filepath.Join(root, "src/gen"), 0o755)
	os.WriteFile(filepath.Join(root, "src/main.go"), []byte("package main\n"), 0o640)
	os.WriteFile(filepath.Join(root, "src/gen/x.pb.go"), []byte("gen"), 0o644)
	os.WriteFile(filepath.Join(root, "src/.gitignore"), []byte("gen/\n"), 0o644)
	os.WriteFile(filepath.Join(root, ".chaserignore"), []byte("*.tmp\n"), 0o644)
	os.WriteFile(filepath.Join(root, "a.tmp"), []byte("t"), 0o644)
	os.MkdirAll(filepath.Join(root, ".git"), 0o755)
	os.WriteFile(filepath.Join(root, ".git/HEAD"), []byte("h"), 0o644)
	os.Symlink(outside, filepath.Join(root, "out"))

	m := NewMatcher()
	var dirs []string
	tree, errs := Scan(root, m, func(rel string) { dirs = append(dirs, rel) })
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	want := []string{".chaserignore", "out", "src", "src/.gitignore", "src/main.go"}
	if strings.Join(sortedKeys(tree), ",") != strings.Join(want, ",") {
		t.Fatalf("scanned %v, want %v (symlinks not followed, ignores honoured)", sortedKeys(tree), want)
	}
	if tree["out"].Type != api.FileTypeSymlink || tree["out"].Link != outside || tree["src/main.go"].Mode != 0o640 {
		t.Fatalf("entries %+v", tree)
	}
	if strings.Join(dirs, ",") != ",src" {
		t.Fatalf("watched %v", dirs)
	}

	var buf bytes.Buffer
	sent, err := writeTar(&buf, root, []string{"out", "src", "src/main.go", "vanished"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(&buf)
	var got []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(tr)
		got = append(got, h.Name+"|"+string(h.Typeflag)+"|"+h.Linkname+"|"+string(body))
	}
	if strings.Join(got, ";") != "out|2|"+outside+"|;src/|5||;src/main.go|0||package main\n" {
		t.Fatalf("tar %q", got)
	}
	if sent["src/main.go"].SHA == "" || len(sent) != 3 {
		t.Fatalf("sent %+v", sent)
	}
}

func sortedKeys(tree Tree) []string {
	var out []string
	for k := range tree {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
