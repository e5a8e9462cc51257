package agent

import (
	"net/url"
	"strings"
	"testing"
)

func parseQuery(s string) (url.Values, error) { return url.ParseQuery(s) }

func TestDoneScannerAcrossSplits(t *testing.T) {
	const nonce = "abc123"
	stream := "hello\n\x1b[31mred\x1b[0m\x00" + nonce + ";0;/tmp\x00" +
		"no newline\x00" + nonce + ";17;/a b;c\x00" +
		"fake \x00" + nonce + "x marker\x00" + nonce + ";oops;/x\x00" +
		"\x1b]0;title\x07tail\x1b" // a cut escape at the very end
	want := []string{"out:hello\nred", "done:0:/tmp", "out:no newline", "done:17:/a b;c",
		"out:fake \x00" + nonce + "x marker\x00" + nonce + ";oops;/x\x00tail"}
	// Every way of cutting the stream in two, and byte by byte, gives the
	// same events.
	cuts := [][]int{}
	for i := 0; i <= len(stream); i++ {
		cuts = append(cuts, []int{i})
	}
	var every []int
	for i := 1; i < len(stream); i++ {
		every = append(every, i)
	}
	cuts = append(cuts, every)
	for _, cut := range cuts {
		s := newDoneScanner(nonce)
		var got []string
		var out strings.Builder
		flush := func() {
			if out.Len() > 0 {
				got = append(got, "out:"+out.String())
				out.Reset()
			}
		}
		prev := 0
		for _, c := range append(cut, len(stream)) {
			s.write([]byte(stream[prev:c]), func(b []byte) { out.Write(b) }, func(ev doneEvent) {
				flush()
				got = append(got, "done:"+itoa(int64(ev.ExitCode))+":"+ev.Cwd)
			})
			prev = c
		}
		flush()
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Fatalf("cut %v:\n got %q\nwant %q", cut, got, want)
		}
	}
}

func TestAnsiStripper(t *testing.T) {
	for in, want := range map[string]string{
		"plain":                        "plain",
		"\x1b[1;32mgreen\x1b[0m":       "green",
		"a\x1b]0;title\x07b":           "ab",
		"a\x1b]8;;http://x\x1b\\b":     "ab",
		"\x1b=x\x1b>y":                 "xy",
		"keep\r\nlines\ttabs":          "keep\r\nlines\ttabs",
		"\x1bP1$r0m\x1b\\after":        "after",
		"\x1b[?2004hprompt\x1b[?2004l": "prompt",
	} {
		var a ansiStripper
		if got := string(a.strip([]byte(in))); got != want {
			t.Errorf("strip(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestFrameLogReplay(t *testing.T) {
	l := newFrameLog(10)
	l.append(false, []byte("abcd"))   // 0..4
	l.append(true, []byte(`{"x":1}`)) // 4..11
	l.append(false, []byte("ef"))     // 11..13
	frames, next, _, closed := l.read(2)
	if len(frames) != 2 || string(frames[0].data) != `{"x":1}` || string(frames[1].data) != "ef" || next != 13 || closed {
		// The limit dropped "abcd": reading from 2 starts at the oldest kept frame.
		t.Fatalf("read(2) = %+v next %d", frames, next)
	}
	frames, _, _, _ = l.read(6) // inside the text frame: skipped whole
	if len(frames) != 1 || string(frames[0].data) != "ef" {
		t.Fatalf("read(6) = %+v", frames)
	}
	frames, _, _, _ = l.read(12) // inside a binary frame: cut
	if len(frames) != 1 || string(frames[0].data) != "f" || frames[0].off != 12 {
		t.Fatalf("read(12) = %+v", frames)
	}
	l.close()
	l.append(false, []byte("late"))
	if _, next, _, closed := l.read(13); !closed || next != 13 {
		t.Fatalf("after close: next %d closed %v", next, closed)
	}
}

func TestParsePTYQuery(t *testing.T) {
	for _, tc := range []struct {
		q    string
		ok   bool
		mode string
	}{
		{"", true, "human"},
		{"mode=agent&cols=200&rows=50", true, "agent"},
		{"mode=exec&command=ls", true, "exec"},
		{"pty_id=p-1&offset=10", true, "human"},
		{"mode=exec", false, ""},
		{"mode=exec&command=%20", false, ""},
		{"mode=nope", false, ""},
		{"mode=agent&command=ls", false, ""},
		{"cols=0", false, ""},
		{"rows=1001", false, ""},
		{"cols=-3", false, ""},
		{"offset=5", false, ""},
		{"pty_id=p-1&offset=-1", false, ""},
		{"cwd=rel/dir", false, ""},
	} {
		q, _ := parseQuery(tc.q)
		o, err := ParsePTYQuery(q)
		if (err == nil) != tc.ok || (tc.ok && o.Mode != tc.mode) {
			t.Errorf("%q: %+v %v", tc.q, o, err)
		}
	}
}
