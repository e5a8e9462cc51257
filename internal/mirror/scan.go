package mirror

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"time"

	"github.com/chaserhq/chaser/api"
)

// Entry is a local file as the mirror sees it.
type Entry struct {
	Type  string // api.FileTypeFile, FileTypeDir or FileTypeSymlink
	Size  int64
	Mode  uint32 // permission bits
	MTime time.Time
	Link  string // symlink target, as written
}

// Tree maps relative slash paths to entries.
type Tree map[string]Entry

// entryOf describes fi; ok is false for what is not mirrored (devices,
// FIFOs, sockets).
func entryOf(abs string, fi fs.FileInfo) (Entry, bool) {
	e := Entry{Size: fi.Size(), Mode: uint32(fi.Mode().Perm()) | modeExtra(fi.Mode()), MTime: fi.ModTime()}
	switch {
	case fi.Mode().IsRegular():
		e.Type = api.FileTypeFile
	case fi.IsDir():
		e.Type, e.Size = api.FileTypeDir, 0
	case fi.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(abs)
		if err != nil {
			return Entry{}, false
		}
		e.Type, e.Link, e.Size, e.Mode = api.FileTypeSymlink, target, 0, 0o777
	default:
		return Entry{}, false
	}
	return e, true
}

// modeExtra maps setuid, setgid and sticky to their octal bits.
func modeExtra(m fs.FileMode) uint32 {
	var x uint32
	if m&fs.ModeSetuid != 0 {
		x |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		x |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		x |= 0o1000
	}
	return x
}

// scanner walks a local tree without following symlinks, loading ignore
// files as it enters directories and skipping what they ignore.
type scanner struct {
	root    string
	matcher *Matcher
	// onDir is called for each directory before it is read (to watch it
	// first, so nothing created meanwhile is missed).
	onDir func(rel string)
	tree  Tree
	errs  []error
}

// scan adds directory rel (a directory known not to be ignored; "" for
// the root) and everything beneath it to s.tree.
func (s *scanner) scan(rel string) {
	if s.onDir != nil {
		s.onDir(rel)
	}
	s.matcher.Load(s.root, rel)
	abs := filepath.Join(s.root, filepath.FromSlash(rel))
	des, err := os.ReadDir(abs)
	if err != nil {
		s.errs = append(s.errs, fmt.Errorf("cannot read %s: %w", abs, err))
		return
	}
	for _, de := range des {
		crel := path.Join(rel, de.Name())
		fi, err := de.Info()
		if err != nil {
			continue // removed meanwhile
		}
		e, ok := entryOf(filepath.Join(abs, de.Name()), fi)
		if !ok || s.matcher.match(crel, e.Type == api.FileTypeDir) {
			continue
		}
		s.tree[crel] = e
		if e.Type == api.FileTypeDir {
			s.scan(crel)
		}
	}
}

// Scan returns the entries of the local tree at root that m does not
// ignore (loading the ignore files it meets into m), and what could not be
// read. Symlinks are entries, never followed.
func Scan(root string, m *Matcher, onDir func(rel string)) (Tree, []error) {
	s := &scanner{root: root, matcher: m, onDir: onDir, tree: Tree{}}
	s.scan("")
	return s.tree, s.errs
}
