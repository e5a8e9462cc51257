package integration

import (
	"sync"
	"testing"
	"time"

	"github.com/chaserhq/chaser/api"
)

// TestExecLongCommandsDoNotHoldStarts: the server's start gate (2 young
// foreground commands per core, internal/sandbox/startgate.go) counts a
// command only for its first 20 ms, so more long foreground commands than
// the gate has slots do not keep a short one from running.
func TestExecLongCommandsDoNotHoldStarts(t *testing.T) {
	s := sharedServer(t)
	key := s.account(t, "paid")
	id := s.sandbox(t, key)
	c := s.Client(key)
	ctx := t.Context()

	var wg sync.WaitGroup
	for range 12 { // over 2 per core on any test machine up to 6 cores
		wg.Add(1)
		go func() {
			defer wg.Done()
			if res, err := c.Exec(ctx, id, api.ExecRequest{Command: "sleep 4"}); err != nil || res.ExitCode != 0 {
				t.Errorf("sleep 4: %+v %v", res, err)
			}
		}()
	}
	defer wg.Wait()
	time.Sleep(500 * time.Millisecond) // the sleeps are running
	start := time.Now()
	res, err := c.Exec(ctx, id, api.ExecRequest{Command: "echo hi"})
	if err != nil || res.Stdout != "hi\n" {
		t.Fatalf("echo hi beside 12 long commands: %+v %v", res, err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("echo hi beside 12 long commands took %v: the long ones held its start", d)
	}
}
