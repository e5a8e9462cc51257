package integration

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/chaserhq/chaser/internal/image/imagetest"
)

// TestConsoleImages drives the admin page's images in headless Chromium
// against a real server and a registry the test started: three images
// pulled through the page (busy state and the server's answer shown),
// listed two at a time with "Show more", a pull from an unreachable
// registry shows the server's error, a delete asks first (Cancel keeps
// the image) and removes it from the server's cache. A non-admin has no
// Admin link and, opening the page anyway, sees the server's 403 and no
// image controls.
func TestConsoleImages(t *testing.T) {
	reg := imagetest.StartRegistry(t)
	base := imagetest.BusyboxLayer(t)
	var refs []string
	for _, tag := range []string{"a", "b", "c"} {
		img := imagetest.Image(t, v1.Config{}, base, imagetest.Layer(t, imagetest.Entry{Name: "etc/tag", Body: []byte(tag)}))
		refs = append(refs, reg.Push(t, "console/img:"+tag, img))
	}
	const bad = "127.0.0.1:1/console/gone:v1" // listed, nothing listens
	addr := freeAddr(t)
	s := newServer(t, "--console-addr", addr, "--insecure-registry", reg.Host, "--allow-registry", "127.0.0.1:1")
	user := s.account(t, "paid")
	refsJSON, _ := json.Marshal(refs)
	res := runDriver(t, 3*time.Minute, "images.mjs", "http://"+addr+"/", s.AdminKey, user, string(refsJSON), bad, t.TempDir(), shotDir(t, "images"))

	if st := res.step("admin link"); st["shown"] != true {
		t.Errorf("the admin's nav has no Admin link: %v", st)
	}
	pulled := 0
	for _, st := range res.Steps {
		if st["name"] == "pulled" {
			pulled++
			if !strings.HasPrefix(fmt.Sprint(st["text"]), "Pulled ") || !strings.Contains(fmt.Sprint(st["cls"]), "ok") {
				t.Errorf("pull of %v: the page says %q (%v)", st["ref"], st["text"], st["cls"])
			}
		}
	}
	if pulled != len(refs) {
		t.Errorf("%d pulls through the page, want %d", pulled, len(refs))
	}
	if trace := fmt.Sprint(res.step("pull trace")["seen"]); !strings.Contains(trace, "busy: true Pulling…") || !strings.Contains(trace, "msg: pulling ") {
		t.Errorf("no busy state while pulling: %s", trace)
	}
	for _, ref := range refs {
		if _, err := s.Client(s.AdminKey).GetImage(t.Context(), ref); err != nil && ref != refs[0] {
			t.Errorf("image %s is not in the server's cache after the page pulled it: %v", ref, err)
		}
	}
	// A step that did not happen has no rows: a failure, not a panic (a
	// panic skips the cleanups and leaves the server running).
	rows := func(st map[string]any) int { r, _ := st["rows"].([]any); return len(r) }
	if st := res.step("first page"); rows(st) != 2 || st["more"] != true {
		t.Errorf("first page with ?limit=2: %v, want 2 rows and Show more", st)
	}
	if st := res.step("all pages"); rows(st) != 3 || st["more"] != false {
		t.Errorf("after Show more: %v, want the 3 images and no more", st)
	}
	if st := res.step("pull unreachable"); !strings.HasPrefix(fmt.Sprint(st["text"]), "Could not pull "+bad) ||
		!strings.Contains(fmt.Sprint(st["text"]), "127.0.0.1:1") || !strings.Contains(fmt.Sprint(st["text"]), "(unavailable)") ||
		!strings.Contains(fmt.Sprint(st["cls"]), "error") {
		t.Errorf("a pull from an unreachable registry: the page says %q (%v)", st["text"], st["cls"])
	}
	if st := res.step("confirm shown"); !strings.Contains(fmt.Sprint(st["text"]), refs[0]) {
		t.Errorf("the confirmation does not name the image: %v", st)
	}
	if st := res.step("cancelled"); st["still"] != true {
		t.Errorf("Cancel deleted the image: %v", st)
	}
	if st := res.step("deleted"); !strings.Contains(fmt.Sprint(st["message"]), "deleted") {
		t.Errorf("delete: %v", st)
	}
	if _, err := s.Client(s.AdminKey).GetImage(t.Context(), refs[0]); err == nil {
		t.Errorf("image %s is still cached after the page deleted it", refs[0])
	}
	if st := res.step("user admin link"); st["shown"] != false {
		t.Errorf("a non-admin's nav shows the Admin link: %v", st)
	}
	if st := res.step("user denied"); !strings.Contains(fmt.Sprint(st["text"]), "403") || st["pull"] != false || st["del"] != false {
		t.Errorf("a non-admin on #/admin: %v, want the server's 403 and no image controls", st)
	}
}
