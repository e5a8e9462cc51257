package agent

import (
	"fmt"
	"io"
	"os"
	"sync"
)

// LogLimit is the most the agent's log file holds. The log is the host's
// agent.log, inherited as stderr: whatever the sandbox makes the agent
// log, the file on the host never grows past this.
const LogLimit = 1 << 20

// capped is a log file that never grows past limit bytes. A write that
// would cross the limit empties the file first (the newest lines are the
// ones worth keeping) and starts it with a line that says so; if the file
// cannot be emptied, further lines are dropped.
type capped struct {
	mu    sync.Mutex
	f     *os.File
	size  int64
	limit int64
	full  bool
}

// logWriter returns f capped at limit when f is a regular file; terminals
// and pipes (an agent started by hand) are returned as they are.
func logWriter(f *os.File, limit int64) io.Writer {
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return f
	}
	return &capped{f: f, size: fi.Size(), limit: limit}
}

func (w *capped) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	if w.full {
		return n, nil
	}
	if w.size+int64(len(p)) > w.limit {
		if err := w.restart(); err != nil {
			w.full = true
			return n, nil
		}
	}
	if room := w.limit - w.size; int64(len(p)) > room {
		p = p[:room]
	}
	m, err := w.f.Write(p)
	w.size += int64(m)
	if err != nil {
		return m, err
	}
	return n, nil
}

// restart empties the file and writes the line that explains the gap.
func (w *capped) restart() error {
	if err := w.f.Truncate(0); err != nil {
		return err
	}
	if _, err := w.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	m, err := fmt.Fprintf(w.f, "agent log reached %d bytes: earlier lines dropped\n", w.limit)
	w.size = int64(m)
	return err
}
