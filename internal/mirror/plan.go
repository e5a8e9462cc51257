package mirror

import (
	"sort"
	"strings"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/agent/fs"
)

// Plan is what a reconcile does: Upload holds paths to send (parents
// before children), Check regular files whose size and mode agree and
// whose hashes must be compared, Delete remote paths gone locally (a
// directory's children are not listed with it).
type Plan struct {
	Upload, Check, Delete []string
}

// Diff compares the local tree with the remote manifest entries. Remote
// paths that are not local are deleted unless ignored says local rules
// ignore them (dependencies installed in the sandbox stay), or a local
// file or symlink replaces one of their parents (its upload replaces the
// whole directory).
func Diff(local Tree, remote map[string]api.ManifestEntry, ignored func(rel string, isDir bool) bool) Plan {
	var p Plan
	for rel, l := range local {
		r, ok := remote[rel]
		switch {
		case !ok || r.Type != l.Type:
			p.Upload = append(p.Upload, rel)
		case l.Type == api.FileTypeSymlink:
			if r.LinkTarget != l.Link {
				p.Upload = append(p.Upload, rel)
			}
		case r.Mode != fs.FormatMode(l.Mode):
			p.Upload = append(p.Upload, rel)
		case l.Type == api.FileTypeFile && r.Size != l.Size:
			p.Upload = append(p.Upload, rel)
		case l.Type == api.FileTypeFile:
			p.Check = append(p.Check, rel)
		}
	}
	gone := map[string]bool{}
	var rels []string
	for rel := range remote {
		if _, ok := local[rel]; !ok {
			rels = append(rels, rel)
		}
	}
	sort.Strings(rels) // parents before children
	for _, rel := range rels {
		if covered(rel, gone, local) || ignored(rel, remote[rel].Type == api.FileTypeDir) {
			continue
		}
		gone[rel] = true
		p.Delete = append(p.Delete, rel)
	}
	sort.Strings(p.Upload)
	sort.Strings(p.Check)
	return p
}

// covered reports whether a parent of rel is already deleted, or is a
// local non-directory that will replace the remote directory.
func covered(rel string, gone map[string]bool, local Tree) bool {
	for i := strings.LastIndexByte(rel, '/'); i > 0; i = strings.LastIndexByte(rel[:i], '/') {
		parent := rel[:i]
		if gone[parent] {
			return true
		}
		if l, ok := local[parent]; ok && l.Type != api.FileTypeDir {
			return true
		}
	}
	return false
}

// Changed returns the paths of check whose local and remote hashes differ
// (a missing remote hash counts as different), sorted.
func Changed(check []string, localHash, remoteHash map[string]string) []string {
	var out []string
	for _, rel := range check {
		if r, ok := remoteHash[rel]; !ok || r != localHash[rel] {
			out = append(out, rel)
		}
	}
	sort.Strings(out)
	return out
}
