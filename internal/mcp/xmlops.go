package mcp

import (
	"encoding/xml"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Op is one structured file operation of the terminal tool's xml argument.
type Op struct {
	Kind      string // read_file, write_file, apply_edit, list_files
	Path      string
	StartLine int // read_file: 1-based, 0 = from the start
	EndLine   int // read_file: inclusive, 0 = to the end
	Content   string
	Edits     []Edit
	Recursive bool
}

// Edit is one exact-text replacement of apply_edit.
type Edit struct {
	Search, Replace string
}

// ParseOps parses the xml argument: one or more operations, in order.
// Content is taken literally: character data, CDATA sections and entities
// are decoded as XML defines them, whitespace is kept.
func ParseOps(src string) ([]Op, error) {
	dec := xml.NewDecoder(strings.NewReader("<ops>" + src + "</ops>"))
	dec.Strict = true
	if _, err := dec.Token(); err != nil { // <ops>
		return nil, fmt.Errorf("malformed xml: %v", err)
	}
	var ops []Op
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("malformed xml: %v", err)
		}
		switch t := tok.(type) {
		case xml.EndElement: // </ops>
			if len(ops) == 0 {
				return nil, errors.New("xml holds no operation (use read_file, write_file, apply_edit or list_files)")
			}
			return ops, nil
		case xml.CharData:
			if strings.TrimSpace(string(t)) != "" {
				return nil, fmt.Errorf("unexpected text %q between operations", truncate(string(t), 40))
			}
		case xml.StartElement:
			op, err := parseOp(dec, t, len(ops)+1)
			if err != nil {
				return nil, err
			}
			ops = append(ops, op)
		}
	}
}

func parseOp(dec *xml.Decoder, start xml.StartElement, n int) (Op, error) {
	op := Op{Kind: start.Name.Local}
	where := fmt.Sprintf("operation %d (%s)", n, op.Kind)
	attrs := map[string]string{}
	for _, a := range start.Attr {
		attrs[a.Name.Local] = a.Value
	}
	op.Path = attrs["path"]
	allowed := map[string][]string{
		"read_file":  {"path", "start_line", "end_line"},
		"write_file": {"path"},
		"apply_edit": {"path"},
		"list_files": {"path", "recursive"},
	}
	names, ok := allowed[op.Kind]
	if !ok {
		return op, fmt.Errorf("%s: unknown operation <%s> (use read_file, write_file, apply_edit or list_files)", where, op.Kind)
	}
	for a := range attrs {
		if !contains(names, a) {
			return op, fmt.Errorf("%s: unknown attribute %q", where, a)
		}
	}
	if op.Path == "" {
		return op, fmt.Errorf("%s: the path attribute is required", where)
	}
	var err error
	if op.StartLine, err = intAttr(attrs, "start_line"); err != nil {
		return op, fmt.Errorf("%s: %v", where, err)
	}
	if op.EndLine, err = intAttr(attrs, "end_line"); err != nil {
		return op, fmt.Errorf("%s: %v", where, err)
	}
	if op.EndLine > 0 && op.StartLine > op.EndLine {
		return op, fmt.Errorf("%s: start_line %d is after end_line %d", where, op.StartLine, op.EndLine)
	}
	if r, ok := attrs["recursive"]; ok {
		if op.Recursive, err = strconv.ParseBool(r); err != nil {
			return op, fmt.Errorf("%s: recursive must be true or false", where)
		}
	}
	switch op.Kind {
	case "write_file":
		op.Content, err = text(dec, where)
	case "apply_edit":
		op.Edits, err = edits(dec, where)
	default:
		var content string
		content, err = text(dec, where)
		if err == nil && strings.TrimSpace(content) != "" {
			err = fmt.Errorf("%s: takes no content", where)
		}
	}
	return op, err
}

// text reads character data up to the element's end.
func text(dec *xml.Decoder, where string) (string, error) {
	var b strings.Builder
	for {
		tok, err := dec.Token()
		if err != nil {
			return "", fmt.Errorf("%s: malformed xml: %v", where, err)
		}
		switch t := tok.(type) {
		case xml.CharData:
			b.Write(t)
		case xml.EndElement:
			return b.String(), nil
		case xml.StartElement:
			return "", fmt.Errorf("%s: content holds an element <%s>; wrap content that has '<' in <![CDATA[ ... ]]>", where, t.Name.Local)
		}
	}
}

// edits reads the <search>/<replace> pairs of apply_edit.
func edits(dec *xml.Decoder, where string) ([]Edit, error) {
	var out []Edit
	var pending *Edit
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("%s: malformed xml: %v", where, err)
		}
		switch t := tok.(type) {
		case xml.CharData:
			if strings.TrimSpace(string(t)) != "" {
				return nil, fmt.Errorf("%s: text outside <search>/<replace>", where)
			}
		case xml.EndElement:
			if pending != nil {
				return nil, fmt.Errorf("%s: <search> without <replace>", where)
			}
			if len(out) == 0 {
				return nil, fmt.Errorf("%s: needs <search>old</search><replace>new</replace>", where)
			}
			return out, nil
		case xml.StartElement:
			s, err := text(dec, where)
			if err != nil {
				return nil, err
			}
			switch {
			case t.Name.Local == "search" && pending == nil:
				if s == "" {
					return nil, fmt.Errorf("%s: <search> is empty", where)
				}
				pending = &Edit{Search: s}
			case t.Name.Local == "replace" && pending != nil:
				pending.Replace = s
				out = append(out, *pending)
				pending = nil
			default:
				return nil, fmt.Errorf("%s: unexpected <%s> (want <search> then <replace>)", where, t.Name.Local)
			}
		}
	}
}

func intAttr(attrs map[string]string, name string) (int, error) {
	v, ok := attrs[name]
	if !ok {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("%s must be a positive integer", name)
	}
	return n, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// ApplyEdits applies exact-text replacements in order. Each search text
// must occur exactly once in the text as it is when its turn comes.
func ApplyEdits(content string, edits []Edit) (string, error) {
	for i, e := range edits {
		switch n := strings.Count(content, e.Search); n {
		case 1:
			content = strings.Replace(content, e.Search, e.Replace, 1)
		case 0:
			return "", fmt.Errorf("edit %d: search text not found: %q", i+1, truncate(e.Search, 60))
		default:
			return "", fmt.Errorf("edit %d: search text is ambiguous: it occurs %d times; include more context", i+1, n)
		}
	}
	return content, nil
}

// Lines returns lines start..end (1-based, inclusive; 0 = open) of content.
func Lines(content string, start, end int) string {
	if start <= 1 && end == 0 {
		return content
	}
	lines := strings.SplitAfter(content, "\n")
	if start < 1 {
		start = 1
	}
	if end == 0 || end > len(lines) {
		end = len(lines)
	}
	if start > end {
		return ""
	}
	return strings.Join(lines[start-1:end], "")
}
