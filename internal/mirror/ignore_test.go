package mirror

import (
	"os"
	"path/filepath"
	"testing"
)

func TestMatcher(t *testing.T) {
	m := NewMatcher()
	m.Add("", []byte(`
# comment
*.log
!keep.log
build/
/dist
node_modules
docs/**/*.tmp
**/cache
logs/**
foo/bar
\#hash
\!bang
trailing   
a?c
[xy]z.txt
[!q]w
`))
	m.Add("sub", []byte("*.gen\n!important.log\n/local\n"))
	for _, tc := range []struct {
		path  string
		isDir bool
		want  bool
	}{
		{"app.log", false, true},
		{"x/y/app.log", false, true},
		{"keep.log", false, false},
		{"x/keep.log", false, false},
		{"build", true, true},
		{"build", false, false}, // dir-only
		{"x/build", true, true},
		{"x/build/out.o", false, true}, // beneath an ignored directory
		{"dist", true, true},
		{"dist/a.js", false, true},
		{"x/dist", true, false}, // anchored
		{"node_modules", true, true},
		{"pkg/node_modules/left-pad/index.js", false, true},
		{"docs/a.tmp", false, true},
		{"docs/x/y/a.tmp", false, true},
		{"a.tmp", false, false},
		{"cache", true, true},
		{"deep/er/cache", false, true},
		{"logs", true, false}, // logs/** ignores what is inside, not logs
		{"logs/a/b", false, true},
		{"foo/bar", false, true},
		{"x/foo/bar", false, false}, // a middle slash anchors
		{"#hash", false, true},
		{"!bang", false, true},
		{"trailing", false, true},
		{"abc", false, true},
		{"abbc", false, false},
		{"a/c", false, false}, // ? never matches /
		{"xz.txt", false, true},
		{"zz.txt", false, false},
		{"pw", false, true},
		{"qw", false, false},
		{".git", true, true},
		{".git/config", false, true},
		{"x/.git/HEAD", false, true},
		{".gitignore", false, false},
		{"sub/a.gen", false, true},
		{"a.gen", false, false},             // sub's rules apply beneath sub only
		{"sub/important.log", false, false}, // deeper file wins
		{"sub/other.log", false, true},
		{"sub/local", false, true},
		{"sub/x/local", false, false},
		{"src/main.go", false, false},
	} {
		if got := m.Ignored(tc.path, tc.isDir); got != tc.want {
			t.Errorf("Ignored(%q, dir=%v) = %v, want %v", tc.path, tc.isDir, got, tc.want)
		}
	}
}

func TestMatcherNoReincludeBeneathIgnoredDir(t *testing.T) {
	m := NewMatcher()
	m.Add("", []byte("out/\n!out/keep.txt\n"))
	if !m.Ignored("out/keep.txt", false) {
		t.Fatal("a file beneath an ignored directory was re-included (git does not)")
	}
	m = NewMatcher()
	m.Add("", []byte("out/*\n!out/keep.txt\n"))
	if m.Ignored("out/keep.txt", false) || !m.Ignored("out/other", false) {
		t.Fatal("out/* with !out/keep.txt must keep only keep.txt")
	}
}

// .chaserignore is read after .gitignore in the same directory, so it can
// re-include what git ignores (or ignore more).
func TestMatcherLoadChaserignoreWins(t *testing.T) {
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, ".gitignore"), []byte("*.env\ndist/\n"), 0o644)
	os.WriteFile(filepath.Join(root, ".chaserignore"), []byte("!deploy.env\nvideos/\n"), 0o644)
	m := NewMatcher()
	m.Load(root, "")
	for path, want := range map[string]bool{"secret.env": true, "deploy.env": false, "dist/a.js": true, "videos/a.mp4": true, "src/a.go": false} {
		if got := m.Ignored(path, false); got != want {
			t.Errorf("Ignored(%q) = %v, want %v", path, got, want)
		}
	}
	// Loading again replaces the rules (an edited ignore file).
	os.WriteFile(filepath.Join(root, ".chaserignore"), []byte(""), 0o644)
	m.Load(root, "")
	if !m.Ignored("deploy.env", false) || m.Ignored("videos/a.mp4", false) {
		t.Error("reloading kept the old .chaserignore rules")
	}
}
