package agent

import (
	"bytes"
	"strconv"
)

// In agent mode each command is followed by a marker the shell prints:
//
//	NUL nonce ";" exit-code ";" cwd NUL
//
// NUL cannot occur in a path and the nonce is random per terminal, so the
// marker cannot be faked by chance. doneScanner finds markers in the raw
// terminal output, which arrives in arbitrary pieces, and hands on the
// output around them with ANSI escape sequences removed.

// maxMarker bounds a marker's length (a cwd is at most PATH_MAX).
const maxMarker = 4096 + 64

// doneEvent is a parsed marker: a command finished.
type doneEvent struct {
	ExitCode int
	Cwd      string
}

type doneScanner struct {
	start []byte // NUL + nonce + ";"
	held  []byte // raw bytes that may begin a marker
	strip ansiStripper
}

func newDoneScanner(nonce string) *doneScanner {
	return &doneScanner{start: []byte("\x00" + nonce + ";")}
}

// write consumes raw output; it calls out for clean output and done for
// every marker, in stream order.
func (s *doneScanner) write(p []byte, out func([]byte), done func(doneEvent)) {
	buf := append(s.held, p...)
	s.held = nil
	for len(buf) > 0 {
		i := bytes.Index(buf, s.start)
		if i < 0 {
			// Keep a tail that may be the start of a marker.
			keep := partialSuffix(buf, s.start)
			s.emit(buf[:len(buf)-keep], out)
			s.held = append([]byte(nil), buf[len(buf)-keep:]...)
			return
		}
		s.emit(buf[:i], out)
		rest := buf[i+len(s.start):]
		j := bytes.IndexByte(rest, 0)
		if j < 0 {
			if len(rest) > maxMarker {
				// Not a marker after all: pass it on.
				s.emit(buf[i:], out)
				return
			}
			s.held = append([]byte(nil), buf[i:]...)
			return
		}
		if ev, ok := parseMarker(rest[:j]); ok {
			s.strip = ansiStripper{}
			done(ev)
		} else {
			s.emit(buf[i:i+len(s.start)+j+1], out)
		}
		buf = rest[j+1:]
	}
}

func (s *doneScanner) emit(p []byte, out func([]byte)) {
	if c := s.strip.strip(p); len(c) > 0 {
		out(c)
	}
}

func parseMarker(b []byte) (doneEvent, bool) {
	code, cwd, ok := bytes.Cut(b, []byte(";"))
	if !ok {
		return doneEvent{}, false
	}
	n, err := strconv.Atoi(string(code))
	if err != nil {
		return doneEvent{}, false
	}
	return doneEvent{ExitCode: n, Cwd: string(cwd)}, true
}

// partialSuffix returns the length of the longest suffix of b that is a
// proper prefix of marker.
func partialSuffix(b, marker []byte) int {
	n := min(len(b), len(marker)-1)
	for ; n > 0; n-- {
		if bytes.HasSuffix(b, marker[:n]) {
			return n
		}
	}
	return 0
}

// ansiStripper removes terminal escape sequences from a byte stream split
// at arbitrary points: CSI (ESC [ … final), OSC/DCS/APC/PM/SOS strings
// (ESC ] … BEL or ESC \), and two-byte escapes. Agent-mode clients are
// programs; colours and cursor moves are noise to them.
type ansiStripper struct {
	state int
}

const (
	ansiText = iota
	ansiEsc
	ansiCSI
	ansiString    // inside OSC/DCS/...: until BEL or ESC \
	ansiStringEsc // ESC seen inside a string
)

func (a *ansiStripper) strip(p []byte) []byte {
	out := make([]byte, 0, len(p))
	for _, c := range p {
		switch a.state {
		case ansiText:
			if c == 0x1b {
				a.state = ansiEsc
			} else {
				out = append(out, c)
			}
		case ansiEsc:
			switch c {
			case '[':
				a.state = ansiCSI
			case ']', 'P', '_', '^', 'X':
				a.state = ansiString
			default:
				a.state = ansiText
			}
		case ansiCSI:
			if c >= 0x40 && c <= 0x7e {
				a.state = ansiText
			}
		case ansiString:
			if c == 0x07 {
				a.state = ansiText
			} else if c == 0x1b {
				a.state = ansiStringEsc
			}
		case ansiStringEsc:
			if c == '\\' {
				a.state = ansiText
			} else {
				a.state = ansiString
			}
		}
	}
	return out
}
