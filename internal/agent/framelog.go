package agent

import "sync"

// frame is one WebSocket message of a terminal's output stream at byte
// offset off: terminal bytes (binary) or a JSON control message (text).
type frame struct {
	off  int64
	text bool
	data []byte
}

// frameLog is the bounded, append-only output of one terminal, kept so a
// client that reconnects gets what it missed. Offsets count the bytes of
// every frame (binary and text) in order. Beyond limit bytes the oldest
// frames are dropped: a client that was away too long resumes at the oldest
// frame still kept.
type frameLog struct {
	mu     sync.Mutex
	frames []frame
	start  int64 // offset of the first kept frame
	end    int64
	kept   int
	limit  int
	closed bool
	wake   chan struct{} // closed and replaced on every change
}

func newFrameLog(limit int) *frameLog {
	return &frameLog{limit: limit, wake: make(chan struct{})}
}

// append adds a frame; it copies data. Appends after close are dropped.
func (l *frameLog) append(text bool, data []byte) {
	if len(data) == 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	l.frames = append(l.frames, frame{off: l.end, text: text, data: append([]byte(nil), data...)})
	l.end += int64(len(data))
	l.kept += len(data)
	for l.kept > l.limit && len(l.frames) > 1 {
		l.kept -= len(l.frames[0].data)
		l.frames[0] = frame{}
		l.frames = l.frames[1:]
		l.start = l.frames[0].off
	}
	l.broadcast()
}

// close marks the log complete.
func (l *frameLog) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		l.closed = true
		l.broadcast()
	}
}

func (l *frameLog) broadcast() {
	close(l.wake)
	l.wake = make(chan struct{})
}

// bounds returns the offsets of the first kept byte and of the end.
func (l *frameLog) bounds() (start, end int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.start, l.end
}

// read returns the frames from off on, the offset to read next, a channel
// closed on the next change, and whether the log is complete. A binary
// frame that off falls inside is cut to start at off; a text frame that off
// falls inside is skipped whole (half a JSON message is useless). An off
// before the oldest kept frame starts there.
func (l *frameLog) read(off int64) (out []frame, next int64, changed <-chan struct{}, closed bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if off < l.start {
		off = l.start
	}
	for _, f := range l.frames {
		fend := f.off + int64(len(f.data))
		if fend <= off {
			continue
		}
		if f.off < off {
			if f.text {
				continue
			}
			f = frame{off: off, data: f.data[off-f.off:]}
		}
		out = append(out, f)
	}
	if off < l.end {
		off = l.end
	}
	return out, off, l.wake, l.closed
}
