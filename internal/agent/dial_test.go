package agent

import (
	"context"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chaserhq/chaser/internal/errdefs"
)

// TestDialPort runs the agent on a unix socket, as in a sandbox, and dials
// a port on this host's loopback through it.
func TestDialPort(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go New(Config{}).Serve(ctx, l)
	c := NewClient(func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	})
	defer c.Close()

	// A server that reads to EOF and only then answers: it needs the
	// half-close to travel through the agent.
	app, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	go func() {
		for {
			conn, err := app.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				b, _ := io.ReadAll(conn)
				conn.Write(append([]byte("got:"), b...))
			}()
		}
	}()
	port := app.Addr().(*net.TCPAddr).Port

	conn, err := c.DialPort(ctx, port)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	msg := strings.Repeat("z", 200<<10)
	go func() {
		conn.Write([]byte(msg))
		conn.(interface{ CloseWrite() error }).CloseWrite()
	}()
	got, err := io.ReadAll(conn)
	if err != nil || string(got) != "got:"+msg {
		t.Fatalf("read %d bytes, %v", len(got), err)
	}

	app.Close()
	_, err = c.DialPort(ctx, port)
	if !errors.Is(err, errdefs.ErrUnavailable) || !strings.Contains(err.Error(), "nothing is listening") {
		t.Fatalf("closed port: %v", err)
	}
	for _, bad := range []int{0, 65536} {
		if _, err := c.DialPort(ctx, bad); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("port %d: %v", bad, err)
		}
	}
}
