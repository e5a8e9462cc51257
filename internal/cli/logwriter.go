package cli

import (
	"io"
	"sync"
)

// logWriter hands the server's log lines to a goroutine that writes them
// to the underlying writer, so that a request never waits for stderr's
// pipe or file while it holds the log handler's lock, which every other
// request then waits for: with 16 clients running commands, writing each
// access log line under that lock made 83% of the server's mutex
// contention (docs/BENCHMARKS.md, "Profiles"). Lines keep their order and
// none is dropped: when more than max bytes wait, Write waits too.
type logWriter struct {
	w   io.Writer
	max int

	mu      sync.Mutex
	cond    *sync.Cond // signalled when lines arrive, are written, or on close
	pending []byte
	closed  bool
	done    chan struct{}
}

// newLogWriter starts writing to w; Close writes what is left and stops.
func newLogWriter(w io.Writer, max int) *logWriter {
	l := &logWriter{w: w, max: max, done: make(chan struct{})}
	l.cond = sync.NewCond(&l.mu)
	go l.run()
	return l
}

// Write queues p (one log record) to be written. After Close it writes
// p itself.
func (l *logWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	for len(l.pending) > 0 && len(l.pending)+len(p) > l.max && !l.closed {
		l.cond.Wait()
	}
	if l.closed {
		l.mu.Unlock()
		<-l.done // after the lines queued before
		return l.w.Write(p)
	}
	l.pending = append(l.pending, p...)
	l.cond.Broadcast()
	l.mu.Unlock()
	return len(p), nil
}

func (l *logWriter) run() {
	defer close(l.done)
	var out []byte
	for {
		l.mu.Lock()
		for len(l.pending) == 0 && !l.closed {
			l.cond.Wait()
		}
		if len(l.pending) == 0 { // closed, all written
			l.mu.Unlock()
			return
		}
		// Swap buffers: writers fill the other one meanwhile.
		out, l.pending = l.pending, out[:0]
		l.cond.Broadcast()
		l.mu.Unlock()
		_, _ = l.w.Write(out)
	}
}

// Close writes the lines still queued and stops the goroutine; later
// writes go straight to the underlying writer.
func (l *logWriter) Close() error {
	l.mu.Lock()
	l.closed = true
	l.cond.Broadcast()
	l.mu.Unlock()
	<-l.done
	return nil
}
