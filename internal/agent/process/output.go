package process

import "sync"

// Stream tags a chunk of output.
type Stream uint8

// The output streams of a process.
const (
	Stdout Stream = 1
	Stderr Stream = 2
)

func (s Stream) String() string {
	if s == Stderr {
		return "stderr"
	}
	return "stdout"
}

// Chunk is a piece of output at byte offset Off of the combined output.
type Chunk struct {
	Stream Stream
	Off    int64
	Data   []byte
}

// Output is the bounded, append-only output log of one process. Offsets are
// positions in the combined stdout+stderr stream, in arrival order. When more
// than limit bytes are kept the oldest chunks are dropped, so a reader that
// falls far behind skips ahead to the oldest byte still kept (the first chunk
// Read returns then starts after the offset asked for: the gap).
//
// A paced log (a foreground command, whose caller streams it) drops nothing
// its pacing reader has not delivered: Append waits while limit bytes are
// unread, which stops the copy from the command's pipe and so holds the
// command back, until the reader acknowledges (Ack) or leaves (Unpace).
type Output struct {
	mu     sync.Mutex
	room   sync.Cond // signalled when acked grows or pacing ends
	chunks []Chunk
	start  int64 // offset of the first kept byte
	end    int64 // offset after the last byte
	kept   int
	limit  int
	closed bool
	paced  bool
	acked  int64         // the pacing reader delivered everything before
	wake   chan struct{} // closed and replaced on every change
}

// NewOutput returns an empty log that keeps at most limit bytes.
func NewOutput(limit int) *Output {
	o := &Output{limit: limit, wake: make(chan struct{})}
	o.room.L = &o.mu
	return o
}

// NewPacedOutput returns an empty paced log (see Output).
func NewPacedOutput(limit int) *Output {
	o := NewOutput(limit)
	o.paced = true
	return o
}

// Append adds data to the log. It copies data. On a paced log it waits
// until the pacing reader has room for data.
func (o *Output) Append(s Stream, data []byte) {
	if len(data) == 0 {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for o.paced && o.end > o.acked && o.end-o.acked+int64(len(data)) > int64(o.limit) {
		o.room.Wait()
	}
	o.chunks = append(o.chunks, Chunk{Stream: s, Off: o.end, Data: append([]byte(nil), data...)})
	o.end += int64(len(data))
	o.kept += len(data)
	for o.kept > o.limit && len(o.chunks) > 1 {
		drop := o.chunks[0]
		if o.paced && drop.Off+int64(len(drop.Data)) > o.acked {
			break // not delivered yet
		}
		o.chunks[0] = Chunk{}
		o.chunks = o.chunks[1:]
		o.kept -= len(drop.Data)
		o.start = o.chunks[0].Off
	}
	o.broadcast()
}

// Ack tells a paced log that its pacing reader delivered every byte before
// off, so Append may go on.
func (o *Output) Ack(off int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if off > o.acked {
		o.acked = off
		o.room.Broadcast()
	}
}

// Unpace turns a paced log into a plain bounded one: its pacing reader
// left, and nobody may hold the command back any more.
func (o *Output) Unpace() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.paced = false
	o.room.Broadcast()
}

// Close marks the log complete: readers see the end once they catch up.
func (o *Output) Close() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.closed = true
	o.broadcast()
}

func (o *Output) broadcast() {
	close(o.wake)
	o.wake = make(chan struct{})
}

// Bounds returns the offsets of the first kept byte and of the end.
func (o *Output) Bounds() (start, end int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.start, o.end
}

// Read returns the chunks from offset off on (the first one cut to start at
// off; offsets before the oldest kept byte start there), the offset to read
// next, a channel closed on the next change, and whether the log is complete
// and fully returned.
func (o *Output) Read(off int64) (chunks []Chunk, next int64, changed <-chan struct{}, done bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if off < o.start {
		off = o.start
	}
	for _, c := range o.chunks {
		cend := c.Off + int64(len(c.Data))
		if cend <= off {
			continue
		}
		if c.Off < off {
			c = Chunk{Stream: c.Stream, Off: off, Data: c.Data[off-c.Off:]}
		}
		chunks = append(chunks, c)
	}
	if off < o.end {
		off = o.end
	}
	return chunks, off, o.wake, o.closed
}
