package cli

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
	"time"
)

// slowWriter records writes and can be held back.
type slowWriter struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	gate chan struct{}
}

func (w *slowWriter) Write(p []byte) (int, error) {
	<-w.gate
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

// TestLogWriter: writes return while the underlying writer is blocked,
// up to the bound; every line arrives, in order, once it unblocks; Close
// writes what is queued; writes after Close still arrive.
func TestLogWriter(t *testing.T) {
	w := &slowWriter{gate: make(chan struct{})}
	l := newLogWriter(w, 64)
	var want bytes.Buffer
	for i := range 5 { // 5 × 8 bytes: under the bound, none waits
		line := fmt.Sprintf("line %02d\n", i)
		want.WriteString(line)
		if n, err := l.Write([]byte(line)); n != len(line) || err != nil {
			t.Fatalf("write: %d %v", n, err)
		}
	}
	done := make(chan struct{})
	go func() { // over the bound: waits for the writer
		defer close(done)
		for i := 5; i < 40; i++ {
			l.Write(fmt.Appendf(nil, "line %02d\n", i))
		}
	}()
	time.Sleep(50 * time.Millisecond)
	select {
	case <-done:
		t.Fatal("320 bytes queued with a bound of 64 while the writer was blocked")
	default:
	}
	for i := 5; i < 40; i++ {
		want.WriteString(fmt.Sprintf("line %02d\n", i))
	}
	close(w.gate)
	<-done
	l.Close()
	l.Write([]byte("after close\n"))
	want.WriteString("after close\n")
	if got := w.buf.String(); got != want.String() {
		t.Fatalf("got\n%s\nwant\n%s", got, want.String())
	}
}
