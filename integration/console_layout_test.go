package integration

import (
	"testing"
	"time"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/image/imagetest"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// TestConsoleLayout opens every page of the console (sign-in, sessions,
// terminal, files, ports, self-test, workspaces, admin, a confirmation) at
// 1280×800 and at 390×844, saves a screenshot of each in
// testdata/screenshots/layout, and fails when a page scrolls sideways
// (document.documentElement.scrollWidth > innerWidth): wide tables must
// scroll inside their own box.
func TestConsoleLayout(t *testing.T) {
	reg := imagetest.StartRegistry(t)
	ref := reg.Push(t, "console/layout-with-a-long-repository-name:v1", imagetest.Image(t, v1.Config{}, imagetest.BusyboxLayer(t)))
	addr := freeAddr(t)
	s := newServer(t, "--console-addr", addr, "--insecure-registry", reg.Host)
	c := s.Client(s.AdminKey)
	if _, err := c.PullImage(t.Context(), api.PullImageRequest{Ref: ref}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateWorkspace(t.Context(), api.CreateWorkspaceRequest{Name: "layout-ws"}); err != nil {
		t.Fatal(err)
	}
	sess, err := c.CreateSession(t.Context(), api.CreateSessionRequest{Type: "sandbox", Ephemeral: true})
	if err != nil {
		t.Fatal(err)
	}
	run(t, s, s.AdminKey, sess.ID, "mkdir -p /workspace/a-directory-with-a-rather-long-name && echo hi > /workspace/notes.txt")
	if _, err := c.SetPortPublic(t.Context(), sess.ID, 8000, true); err != nil {
		t.Fatal(err)
	}
	res := runDriver(t, 3*time.Minute, "layout.mjs", "http://"+addr+"/", s.AdminKey, sess.ID, t.TempDir(), shotDir(t, "layout"))
	n := 0
	for _, st := range res.Steps {
		if st["name"] != "layout" {
			continue
		}
		n++
		if sw, iw := st["scrollWidth"].(float64), st["innerWidth"].(float64); sw > iw {
			t.Errorf("%v scrolls sideways: scrollWidth %v > innerWidth %v; sticking out: %v", st["page"], sw, iw, st["wide"])
		}
	}
	if n != 2*9 {
		t.Errorf("%d pages measured, want 18 (9 pages at 2 sizes)", n)
	}
}
