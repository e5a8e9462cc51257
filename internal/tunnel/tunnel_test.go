package tunnel

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/coder/websocket"
)

// TestHalfClose sends bytes one way, half-closes, and gets an answer back
// over the same tunnel, like a client of a request–EOF–reply protocol.
func TestHalfClose(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		c := New(r.Context(), ws)
		defer c.Close()
		got, err := io.ReadAll(c) // until the client's half-close
		if err != nil {
			t.Errorf("server read: %v", err)
			return
		}
		c.Write([]byte("got " + string(got)))
		c.CloseWrite()
		// The client still may not send: it half-closed.
		if n, err := c.Read(make([]byte, 1)); n != 0 || err != io.EOF {
			t.Errorf("read after the peer's half-close: %d %v", n, err)
		}
	}))
	defer srv.Close()

	ws, _, err := websocket.Dial(t.Context(), "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	c := New(t.Context(), ws)
	defer c.Close()
	msg := strings.Repeat("x", 100<<10)
	for i := 0; i < len(msg); i += 32 << 10 {
		if _, err := c.Write([]byte(msg[i:min(i+32<<10, len(msg))])); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("late")); err == nil {
		t.Error("write after CloseWrite succeeded")
	}
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "got "+msg {
		t.Fatalf("reply of %d bytes, %v", len(got), err)
	}
}
