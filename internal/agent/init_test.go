package agent

import (
	"errors"
	"strings"
	"testing"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/errdefs"
)

// TestInit checks the claim of a pooled sandbox: init lays the session's
// identity over the environment of later commands, once; a second init,
// or one without a session id or with a private variable, is refused.
func TestInit(t *testing.T) {
	ctx := t.Context()
	c := serveTest(t, Config{Env: []string{"PATH=/usr/bin:/bin", "CHASER_WORKSPACE_ID=old"}})

	for _, bad := range []InitRequest{{}, {SessionID: "s-1", Env: map[string]string{"CHASER_AGENT_USER": "0:0"}}, {SessionID: "s-1", Env: map[string]string{"A=B": "x"}}} {
		if err := c.Init(ctx, bad); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Fatalf("Init(%+v) = %v, want invalid argument", bad, err)
		}
	}
	if err := c.Init(ctx, InitRequest{SessionID: "s-1", Env: map[string]string{"CHASER_WORKSPACE_ID": ""}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Init(ctx, InitRequest{SessionID: "s-2"}); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("second Init = %v, want failed precondition", err)
	}
	cmd, err := c.Start(ctx, api.ExecRequest{Command: `echo "$CHASER_SESSION_ID:$CHASER_WORKSPACE_ID:"`, Cwd: "/"})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Output(ctx, cmd.ID, 0, true, false, "raw")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out strings.Builder
	b := make([]byte, 256)
	for {
		n, err := resp.Body.Read(b)
		out.Write(b[:n])
		if err != nil {
			break
		}
	}
	if out.String() != "s-1::\n" {
		t.Fatalf("command saw %q, want the session's identity s-1::", out.String())
	}
}
