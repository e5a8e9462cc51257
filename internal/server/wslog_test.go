package server

import (
	"encoding/binary"
	"testing"
)

// frame builds one WebSocket frame; mask is nil for server frames.
func frame(op byte, payload []byte, mask []byte) []byte {
	b := []byte{0x80 | op}
	m := byte(0)
	if mask != nil {
		m = 0x80
	}
	switch n := len(payload); {
	case n < 126:
		b = append(b, m|byte(n))
	case n < 1<<16:
		b = append(b, m|126, byte(n>>8), byte(n))
	default:
		b = append(b, m|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	if mask != nil {
		b = append(b, mask...)
		for i, c := range payload {
			b = append(b, c^mask[i%4])
		}
		return b
	}
	return append(b, payload...)
}

func TestFrameSniffer(t *testing.T) {
	mask := []byte{1, 2, 3, 4}
	closeWith := func(code uint16, reason string) []byte {
		return append(binary.BigEndian.AppendUint16(nil, code), reason...)
	}
	for _, tc := range []struct {
		name    string
		headers bool
		stream  []byte
		code    int
		found   bool
	}{
		{"server close after data", false, append(append(frame(2, make([]byte, 70000), nil), frame(1, []byte("hi"), nil)...), frame(8, closeWith(1000, "exit 3"), nil)...), 1000, true},
		{"answer headers first", true, append([]byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"), frame(8, closeWith(1008, "bad"), nil)...), 1008, true},
		{"masked client close", false, append(frame(1, []byte("ls\r"), mask), frame(8, closeWith(1001, ""), mask)...), 1001, true},
		{"close without code", false, frame(8, nil, mask), 1005, true},
		{"no close", false, frame(2, make([]byte, 300), nil), 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Whole, and one byte at a time: frames split anywhere.
			for _, step := range []int{len(tc.stream), 1, 7} {
				s := frameSniffer{headers: tc.headers}
				code, found := 0, false
				for i := 0; i < len(tc.stream); i += step {
					if c, ok := s.feed(tc.stream[i:min(i+step, len(tc.stream))]); ok {
						code, found = c, true
					}
				}
				if code != tc.code || found != tc.found {
					t.Fatalf("step %d: got %d %v, want %d %v", step, code, found, tc.code, tc.found)
				}
			}
		})
	}
}
