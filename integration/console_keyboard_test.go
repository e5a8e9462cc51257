package integration

import (
	"fmt"
	"testing"
	"time"
)

// TestConsoleKeyboard uses the console with the keyboard alone (Tab,
// Shift+Tab, Enter, Space, Escape and typing; no mouse event): sign in,
// create a sandbox, open its terminal and type into it (Tab completes in
// the shell; Esc then Shift+Tab leaves), make a directory on the files
// page, open a forwarded port, delete the sandbox through the
// confirmation dialog and sign out. Every focus stop must be visible, a
// list's refresh must not drop the focus, and the dialog keeps the focus
// inside and gives it back.
func TestConsoleKeyboard(t *testing.T) {
	addr := freeAddr(t)
	s := newServer(t, "--console-addr", addr)
	key := s.account(t, "paid")
	res := runDriver(t, 3*time.Minute, "keyboard.mjs", "http://"+addr+"/", key, t.TempDir(), shotDir(t, "keyboard"))

	if st := res.step("start focus"); st["id"] != "key" {
		t.Errorf("the sign-in page does not start in the key field: %v", st)
	}
	if st := res.step("terminal focus"); st["term"] != true || st["visible"] != true {
		t.Errorf("opening the terminal does not focus it visibly: %v", st)
	}
	res.step("tab completes")
	if st := res.step("left terminal"); st["term"] == true || st["tag"] != "button" {
		t.Errorf("Esc, Shift+Tab does not leave the terminal for its toolbar: %v", st)
	}
	res.step("mkdir")
	if st := res.step("ports refresh keeps focus"); st["label"] != "Open port 8000" {
		t.Errorf("the ports list's refresh moved the focus to %v", st)
	}
	res.step("port opened")
	id := fmt.Sprint(res.step("created")["id"])
	if st := res.step("list refresh keeps focus"); st["label"] != "Delete "+id {
		t.Errorf("the sessions list's refresh moved the focus to %v", st)
	}
	if st := res.step("dialog focus"); fmt.Sprint(st["first"].(map[string]any)["id"]) != "ask-cancel" ||
		fmt.Sprint(st["second"].(map[string]any)["id"]) != "ask-yes" ||
		fmt.Sprint(st["third"].(map[string]any)["id"]) != "ask-cancel" ||
		fmt.Sprint(st["back"].(map[string]any)["id"]) != "ask-yes" {
		t.Errorf("the confirmation's focus: %v, want Cancel first, Tab and Shift+Tab cycling between Cancel and Delete", st)
	}
	if st := res.step("escape cancels"); st["row"] != true || st["focus"].(map[string]any)["label"] != "Delete "+id {
		t.Errorf("Escape in the confirmation: %v, want the session kept and the focus back on its Delete", st)
	}
	if st := res.step("deleted"); st["focus"].(map[string]any)["tag"] == "body" {
		t.Errorf("after the delete the focus fell to the page: %v", st)
	}
	if st := res.step("signed out"); st["stored"] != nil {
		t.Errorf("signed out by keyboard, the key is still stored: %v", st)
	}
	if stops, _ := res.step("unseen focus")["stops"].([]any); len(stops) > 0 {
		t.Errorf("focus stops without a visible focus indicator: %v", stops)
	}
	if sess, err := s.Client(key).GetSession(t.Context(), id); err == nil && sess.Status == "running" {
		t.Errorf("session %s still runs after the keyboard deleted it", id)
	}
}
