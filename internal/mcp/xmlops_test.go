package mcp

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseOps(t *testing.T) {
	got, err := ParseOps(`
		<read_file path="/a" start_line="2" end_line="3"/>
		<write_file path="/b">  x &lt; y &amp;&amp; <![CDATA[<html> & "q"]]>
</write_file>
		<apply_edit path="/c"><search>old</search><replace></replace><search>a</search><replace>b</replace></apply_edit>
		<list_files path="/d" recursive="true"/>`)
	if err != nil {
		t.Fatal(err)
	}
	want := []Op{
		{Kind: "read_file", Path: "/a", StartLine: 2, EndLine: 3},
		{Kind: "write_file", Path: "/b", Content: "  x < y && <html> & \"q\"\n"},
		{Kind: "apply_edit", Path: "/c", Edits: []Edit{{"old", ""}, {"a", "b"}}},
		{Kind: "list_files", Path: "/d", Recursive: true},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ParseOps =\n%+v\nwant\n%+v", got, want)
	}
}

func TestParseOpsErrors(t *testing.T) {
	cases := map[string]string{
		``:                                      "no operation",
		`<read_file path="/a">`:                 "malformed xml",
		`<delete_file path="/a"/>`:              "unknown operation <delete_file>",
		`<read_file/>`:                          "path attribute is required",
		`<read_file path="/a" color="red"/>`:    `unknown attribute "color"`,
		`<read_file path="/a" start_line="x"/>`: "start_line must be a positive integer",
		`<read_file path="/a" start_line="5" end_line="2"/>`:                       "after end_line",
		`<list_files path="/a" recursive="yes"/>`:                                  "recursive must be true or false",
		`<write_file path="/a"><b>x</b></write_file>`:                              "CDATA",
		`<apply_edit path="/a"></apply_edit>`:                                      "needs <search>",
		`<apply_edit path="/a"><search>x</search></apply_edit>`:                    "without <replace>",
		`<apply_edit path="/a"><search></search><replace>y</replace></apply_edit>`: "<search> is empty",
		`<apply_edit path="/a"><replace>y</replace></apply_edit>`:                  "unexpected <replace>",
		`hello <read_file path="/a"/>`:                                             "unexpected text",
		`<read_file path="/a">text</read_file>`:                                    "takes no content",
	}
	for in, want := range cases {
		if _, err := ParseOps(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseOps(%q) = %v, want an error containing %q", in, err, want)
		}
	}
}

func TestApplyEdits(t *testing.T) {
	got, err := ApplyEdits("a b c", []Edit{{"b", "B"}, {"B c", "x"}})
	if err != nil || got != "a x" {
		t.Fatalf("ApplyEdits = %q, %v", got, err)
	}
	if _, err := ApplyEdits("a a", []Edit{{"a", "b"}}); err == nil || !strings.Contains(err.Error(), "ambiguous") {
		t.Fatalf("ambiguous: %v", err)
	}
	if _, err := ApplyEdits("a", []Edit{{"z", "b"}}); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("absent: %v", err)
	}
}

func TestLines(t *testing.T) {
	c := "1\n2\n3\n4"
	for _, tc := range []struct {
		s, e int
		want string
	}{{0, 0, c}, {2, 3, "2\n3\n"}, {3, 0, "3\n4"}, {0, 1, "1\n"}, {9, 0, ""}, {2, 99, "2\n3\n4"}} {
		if got := Lines(c, tc.s, tc.e); got != tc.want {
			t.Errorf("Lines(%d,%d) = %q, want %q", tc.s, tc.e, got, tc.want)
		}
	}
}
