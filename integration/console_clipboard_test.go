package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chaserhq/chaser/api"
)

// TestConsoleClipboard copies from and pastes into the browser terminal
// in headless Chromium with the clipboard permissions granted: a word of
// output selected by double click and copied with Ctrl+Shift+C is what the
// clipboard holds; a command pasted with Ctrl+Shift+V reaches the shell
// exactly once and runs; the Paste button pastes too.
func TestConsoleClipboard(t *testing.T) {
	addr := freeAddr(t)
	s := newServer(t, "--console-addr", addr)
	key := s.account(t, "paid")
	sess, err := s.Client(key).CreateSession(t.Context(), api.CreateSessionRequest{Type: "sandbox", Ephemeral: true})
	if err != nil {
		t.Fatal(err)
	}
	res := runDriver(t, 2*time.Minute, "clipboard.mjs", "http://"+addr+"/", key, sess.ID, t.TempDir(), shotDir(t, "clipboard"))

	if st := res.step("copied"); st["selection"] != "copy-42-me" || st["clipboard"] != "copy-42-me" {
		t.Errorf("copy: selection %q, clipboard %q, want both copy-42-me (%v)", st["selection"], st["clipboard"], st)
	}
	if line := fmt.Sprint(res.step("pasted")["line"]); strings.Count(line, "echo pasted-") != 1 {
		t.Errorf("after Ctrl+Shift+V the command line is %q, want the pasted command once", line)
	}
	res.step("paste button")
}
