package agent

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLogWriterCaps(t *testing.T) {
	const limit = 1000
	path := filepath.Join(t.TempDir(), "agent.log")
	// Opened as the runtime opens agent.log, with a line already in it.
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.WriteString("runc: started\n")
	w := logWriter(f, limit)
	line := []byte(strings.Repeat("x", 99) + "\n")
	for i := range 100 {
		if n, err := w.Write(line); n != len(line) || err != nil {
			t.Fatalf("write %d: %d, %v", i, n, err)
		}
		if fi, _ := os.Stat(path); fi.Size() > limit {
			t.Fatalf("after %d lines the log is %d bytes, cap %d", i+1, fi.Size(), limit)
		}
	}
	w.Write([]byte("last line\n"))
	b, _ := os.ReadFile(path)
	if !bytes.HasPrefix(b, []byte("agent log reached 1000 bytes")) || !bytes.HasSuffix(b, []byte("x\nlast line\n")) {
		t.Errorf("log after the cap: %q", b)
	}
	// One write larger than the cap is cut, not let through.
	w.Write(bytes.Repeat([]byte("y"), 5*limit))
	if fi, _ := os.Stat(path); fi.Size() > limit {
		t.Errorf("a huge line grew the log to %d bytes", fi.Size())
	}
}

func TestLogWriterLeavesPipesAlone(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if got := logWriter(w, 10); got != w {
		t.Errorf("a pipe was wrapped: %T", got)
	}
}
