package integration

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/chaserhq/chaser/internal/testserver"
)

// TestServesWhileLogStalls runs the real server with its stderr on a pipe
// that nobody reads for a while, as a stalled journald or a paused
// terminal would leave it, and checks that requests are still answered:
// every request writes an access line, and writing it under the log
// handler's lock once made the whole server wait for the pipe (a 64 KiB
// pipe held ~300 lines). Lines now queue (up to 1 MiB) for a writer of
// their own, and none is lost: they all arrive once the pipe is read.
func TestServesWhileLogStalls(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: the server needs root")
	}
	bin, err := testserver.Binary()
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	dataDir := t.TempDir()
	cmd := exec.Command(bin, "serve", "--addr", addr, "--data-dir", dataDir, "--pool-size", "0")
	cmd.Env = append(os.Environ(), "CHASER_EGRESS=none")
	cmd.Stderr = w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	drained := make(chan []byte, 1)
	stop := func() {
		go func() { b, _ := io.ReadAll(r); drained <- b }()
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}
	defer func() {
		if cmd.ProcessState == nil {
			stop()
		}
	}()
	hc := &http.Client{Timeout: 5 * time.Second}
	get := func() error {
		resp, err := hc.Get("http://" + addr + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
	for deadline := time.Now().Add(20 * time.Second); get() != nil; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("server did not start")
		}
	}
	// ~1000 access lines of ~200 bytes: three pipes' worth, well under
	// the queue's 1 MiB.
	const n = 1000
	for i := range n {
		if err := get(); err != nil {
			t.Fatalf("request %d of %d while stderr is not read: %v", i+1, n, err)
		}
	}
	stop()
	log := <-drained
	lines := 0
	for _, b := range log {
		if b == '\n' {
			lines++
		}
	}
	if lines < n {
		t.Fatalf("the log has %d lines after %d requests: lines were lost", lines, n)
	}
}
