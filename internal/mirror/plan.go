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
	var gone []string
	for rel := range remote {
		if _, ok := local[rel]; !ok {
			gone = append(gone, rel)
		}
	}
	isDir := func(rel string) bool { return remote[rel].Type == api.FileTypeDir }
	p.Delete = prunable(gone, isDir, ignored, func(rel string) bool { return replaced(rel, local) })
	sort.Strings(p.Upload)
	sort.Strings(p.Check)
	return p
}

// replaced reports whether a parent of rel is a local file or symlink,
// whose upload replaces the remote directory with everything in it.
func replaced(rel string, local Tree) bool {
	for p := parent(rel); p != ""; p = parent(p) {
		if l, ok := local[p]; ok && l.Type != api.FileTypeDir {
			return true
		}
	}
	return false
}

func parent(rel string) string {
	if i := strings.LastIndexByte(rel, '/'); i > 0 {
		return rel[:i]
	}
	return ""
}

// prunable returns what to delete of the remote paths gone locally: each
// one unless ignored, skipped, or beneath one already deleted. A
// directory that holds ignored paths (pkg/node_modules in a pkg deleted
// locally) is kept, and its other entries deleted one by one: what local
// rules ignore is never deleted.
func prunable(gone []string, isDir func(string) bool, ignored func(string, bool) bool, skip func(string) bool) []string {
	sort.Strings(gone) // parents before children
	ign := map[string]bool{}
	keep := map[string]bool{}
	for _, rel := range gone {
		if underAny(rel, ign) || ignored(rel, isDir(rel)) {
			ign[rel] = true
			for p := parent(rel); p != ""; p = parent(p) {
				keep[p] = true
			}
		}
	}
	deleted := map[string]bool{}
	var out []string
	for _, rel := range gone {
		if ign[rel] || keep[rel] || underAny(rel, deleted) || (skip != nil && skip(rel)) {
			continue
		}
		deleted[rel] = true
		out = append(out, rel)
	}
	return out
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
