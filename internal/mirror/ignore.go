// Package mirror keeps a sandbox directory a copy of a local tree: the
// engine of `chaser dev`. It scans the local tree honouring .gitignore and
// .chaserignore rules, reconciles it with the sandbox's manifest (sending
// what differs as one tar stream and pruning what is gone locally, never
// what local rules ignore), then watches the tree with fsnotify and
// mirrors changes in batches. Local is authoritative: nothing flows back.
package mirror

import (
	"bufio"
	"bytes"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// Ignore files read in every directory; rules of .chaserignore come after
// those of .gitignore in the same directory, so they win.
var ignoreFiles = []string{".gitignore", ".chaserignore"}

// isIgnoreFile reports whether rel is a file whose change alters the rules.
func isIgnoreFile(rel string) bool {
	b := path.Base(rel)
	return b == ".gitignore" || b == ".chaserignore"
}

// rule is one compiled pattern line.
type rule struct {
	re      *regexp.Regexp
	negate  bool
	dirOnly bool
}

// Matcher decides which relative paths are ignored, with git's rules:
// patterns of a .gitignore apply beneath its directory, deeper files and
// later lines win, "!" re-includes, a trailing "/" matches directories
// only, a pattern with a "/" other than at its end is anchored to its
// file's directory, "**" spans directories, and nothing beneath an ignored
// directory can be re-included. ".git" is always ignored.
type Matcher struct {
	rules map[string][]rule // by directory of the ignore file ("" for the root)
	bases []string          // keys of rules, shallowest first
}

// NewMatcher returns a matcher without rules (only .git is ignored).
func NewMatcher() *Matcher { return &Matcher{rules: map[string][]rule{}} }

// Add adds the pattern lines of an ignore file in directory base (relative,
// "" for the root), after any rules already there.
func (m *Matcher) Add(base string, data []byte) {
	var rs []rule
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if r, ok := compile(sc.Text()); ok {
			rs = append(rs, r)
		}
	}
	if len(rs) == 0 {
		return
	}
	if _, ok := m.rules[base]; !ok {
		m.bases = append(m.bases, base)
		sort.Slice(m.bases, func(i, j int) bool { return depth(m.bases[i]) < depth(m.bases[j]) })
	}
	m.rules[base] = append(m.rules[base], rs...)
}

// Load reads the ignore files of directory rel of the local tree at root,
// replacing the rules it had for rel.
func (m *Matcher) Load(root, rel string) {
	if _, ok := m.rules[rel]; ok {
		delete(m.rules, rel)
		for i, b := range m.bases {
			if b == rel {
				m.bases = append(m.bases[:i], m.bases[i+1:]...)
				break
			}
		}
	}
	for _, name := range ignoreFiles {
		if data, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(rel), name)); err == nil {
			m.Add(rel, data)
		}
	}
}

func depth(p string) int {
	if p == "" {
		return 0
	}
	return strings.Count(p, "/") + 1
}

// Ignored reports whether rel (a relative slash path; isDir when it is a
// directory) is ignored, itself or through one of its parent directories.
func (m *Matcher) Ignored(rel string, isDir bool) bool {
	parts := strings.Split(rel, "/")
	for i := 1; i < len(parts); i++ {
		if m.match(strings.Join(parts[:i], "/"), true) {
			return true
		}
	}
	return m.match(rel, isDir)
}

// match applies the rules to rel alone (its parents are not checked).
func (m *Matcher) match(rel string, isDir bool) bool {
	if path.Base(rel) == ".git" {
		return true
	}
	ignored := false
	for _, base := range m.bases {
		sub := rel
		if base != "" {
			if !strings.HasPrefix(rel, base+"/") {
				continue
			}
			sub = rel[len(base)+1:]
		}
		for _, r := range m.rules[base] {
			if r.dirOnly && !isDir {
				continue
			}
			if r.re.MatchString(sub) {
				ignored = !r.negate
			}
		}
	}
	return ignored
}

// compile turns one line of an ignore file into a rule; ok is false for
// blank lines and comments.
func compile(line string) (rule, bool) {
	line = strings.TrimSuffix(line, "\r")
	// Trailing spaces are dropped unless escaped with a backslash.
	for strings.HasSuffix(line, " ") && !strings.HasSuffix(line, `\ `) {
		line = line[:len(line)-1]
	}
	if line == "" || strings.HasPrefix(line, "#") {
		return rule{}, false
	}
	var r rule
	if strings.HasPrefix(line, "!") {
		r.negate = true
		line = line[1:]
	} else if strings.HasPrefix(line, `\!`) || strings.HasPrefix(line, `\#`) {
		line = line[1:]
	}
	if strings.HasSuffix(line, "/") {
		r.dirOnly = true
		line = strings.TrimRight(line, "/")
	}
	if line == "" {
		return rule{}, false
	}
	anchored := strings.Contains(line, "/")
	line = strings.TrimPrefix(line, "/")
	segs := strings.Split(line, "/")
	var b strings.Builder
	b.WriteString("^")
	if !anchored {
		b.WriteString("(?:.*/)?")
	}
	for i, seg := range segs {
		last := i == len(segs)-1
		if seg == "**" {
			if last {
				b.WriteString(".+") // "a/**": everything inside a, not a itself
			} else {
				b.WriteString("(?:.*/)?")
			}
			continue
		}
		b.WriteString(globSegment(seg))
		if !last {
			b.WriteString("/")
		}
	}
	b.WriteString("$")
	re, err := regexp.Compile(b.String())
	if err != nil {
		return rule{}, false
	}
	r.re = re
	return r, true
}

// globSegment translates one path segment of a glob into a regexp: "*"
// and "?" never match "/", "[…]" is a class ("[!…]" negated), "\x" is x.
func globSegment(seg string) string {
	var b strings.Builder
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		switch c {
		case '*':
			b.WriteString("[^/]*")
		case '?':
			b.WriteString("[^/]")
		case '\\':
			if i+1 < len(seg) {
				i++
				b.WriteString(regexp.QuoteMeta(string(seg[i])))
			} else {
				b.WriteString(`\\`)
			}
		case '[':
			j := i + 1
			if j < len(seg) && (seg[j] == '!' || seg[j] == '^') {
				j++
			}
			if j < len(seg) && seg[j] == ']' {
				j++
			}
			for j < len(seg) && seg[j] != ']' {
				j++
			}
			if j >= len(seg) {
				b.WriteString(`\[`)
				continue
			}
			class := seg[i+1 : j]
			if strings.HasPrefix(class, "!") {
				class = "^" + class[1:]
			}
			class = strings.ReplaceAll(class, `\`, `\\`)
			b.WriteString("[" + class + "]")
			i = j
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	return b.String()
}
