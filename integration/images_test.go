package integration

import (
	"archive/tar"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/image/imagetest"
)

// imageFixture is a registry with a multi-layer busybox image pushed:
// base (busybox, passwd), a layer adding files, a layer deleting some with
// a whiteout and hiding a directory's lower contents with an opaque marker.
type imageFixture struct {
	reg   *imagetest.Registry
	base  v1.Layer
	ref   string // the multi-layer image
	layer []string
}

func newImageFixture(t *testing.T) *imageFixture {
	reg := imagetest.StartRegistry(t)
	base := imagetest.BusyboxLayer(t)
	add := imagetest.Layer(t,
		imagetest.Entry{Name: "etc/motd", Body: []byte("welcome\n")},
		imagetest.Entry{Name: "opt/app/old", Body: []byte("old\n")},
		imagetest.Entry{Name: "opt/keep/file", Body: []byte("kept\n")},
		imagetest.Entry{Name: "srv/app/", Type: tar.TypeDir},
	)
	del := imagetest.Layer(t,
		imagetest.Entry{Name: "etc/.wh.motd"},
		imagetest.Entry{Name: "opt/app/", Type: tar.TypeDir},
		imagetest.Entry{Name: "opt/app/.wh..wh..opq"},
		imagetest.Entry{Name: "opt/app/new", Body: []byte("new\n")},
	)
	img := imagetest.Image(t, v1.Config{Env: []string{"PATH=/bin", "GREETING=hello from the image"}, WorkingDir: "/srv/app"}, base, add, del)
	f := &imageFixture{reg: reg, base: base, ref: reg.Push(t, "test/multi:v1", img)}
	for _, l := range []v1.Layer{base, add, del} {
		f.layer = append(f.layer, imagetest.LayerDigest(t, l))
	}
	return f
}

// run runs a command in a session and returns its stdout, failing on a
// non-zero exit.
func run(t *testing.T, s *Server, key, id, command string) string {
	t.Helper()
	res, err := s.Client(key).Exec(t.Context(), id, api.ExecRequest{Command: command})
	if err != nil {
		t.Fatalf("exec %q: %v", command, err)
	}
	if res.ExitCode != 0 {
		t.Fatalf("exec %q: exit %d, stdout %q, stderr %q", command, res.ExitCode, res.Stdout, res.Stderr)
	}
	return strings.TrimSpace(res.Stdout)
}

// createWithImage creates an ephemeral session of ref through the API and
// deletes it at the end of the test.
func createWithImage(t *testing.T, s *Server, key, ref string) (int, []byte, string) {
	t.Helper()
	body, _ := json.Marshal(api.CreateSessionRequest{Type: "sandbox", Ephemeral: true, Image: ref})
	status, b := s.do(t, key, "POST", "/v1/sessions", string(body))
	if status != 201 {
		return status, b, ""
	}
	var sess api.Session
	decodeJSON(t, b, &sess)
	t.Cleanup(func() { s.Client(key).DeleteSession(context.Background(), sess.ID) })
	return status, b, sess.ID
}

// cacheDirs lists the layer directories and temporary unpack directories
// of a server's image cache.
func cacheDirs(t *testing.T, s *Server) (layers, tmp []string) {
	t.Helper()
	l, _ := os.ReadDir(filepath.Join(s.DataDir, "images", "l"))
	for _, e := range l {
		layers = append(layers, e.Name())
	}
	m, _ := os.ReadDir(filepath.Join(s.DataDir, "images", "tmp"))
	for _, e := range m {
		tmp = append(tmp, e.Name())
	}
	return layers, tmp
}

func TestImageRunAndReuse(t *testing.T) {
	f := newImageFixture(t)
	s := newServer(t, "--insecure-registry", f.reg.Host)
	key := s.account(t, "paid")

	// Create through the CLI, as a user would.
	r := s.cli(t, key, nil, "sandbox", "--ephemeral", "--image", f.ref, "--json")
	if r.Code != 0 {
		t.Fatalf("chaser sandbox --image: exit %d: %s", r.Code, r.Stderr)
	}
	var sess api.Session
	decodeJSON(t, []byte(r.Stdout), &sess)
	t.Cleanup(func() { s.Client(key).DeleteSession(context.Background(), sess.ID) })
	if sess.Image != f.ref {
		t.Errorf("session image %q, want %q", sess.Image, f.ref)
	}

	t.Run("busybox-only image runs commands", func(t *testing.T) {
		if out := run(t, s, key, sess.ID, "echo $0; ls /bin/sh && busybox true && echo ok"); !strings.HasSuffix(out, "ok") {
			t.Errorf("got %q", out)
		}
		if out := run(t, s, key, sess.ID, "test ! -e /usr/bin/python3 && test ! -e /bin/bash && echo plain"); out != "plain" {
			t.Errorf("image has host tools? %q", out)
		}
	})
	t.Run("config env and working dir apply", func(t *testing.T) {
		if out := run(t, s, key, sess.ID, "pwd"); out != "/srv/app" {
			t.Errorf("pwd = %q, want the image's WorkingDir /srv/app", out)
		}
		if out := run(t, s, key, sess.ID, `echo "$GREETING|$PATH|$HOME"`); out != "hello from the image|/bin|/root" {
			t.Errorf("env = %q", out)
		}
		if out := run(t, s, key, sess.ID, "env | grep -c CHASER_AGENT_ || true"); out != "0" {
			t.Errorf("agent settings leak into commands: %q", out)
		}
		if out := run(t, s, key, sess.ID, "id -u"); out != "0" {
			t.Errorf("id -u = %q, want root for an image without USER", out)
		}
	})
	t.Run("whiteouts and opaque directories", func(t *testing.T) {
		if out := run(t, s, key, sess.ID, "test ! -e /etc/motd && echo gone"); out != "gone" {
			t.Errorf("/etc/motd is still there: %q", out)
		}
		if out := run(t, s, key, sess.ID, "ls /opt/app"); out != "new" {
			t.Errorf("ls /opt/app = %q, want only the upper layer's file", out)
		}
		if out := run(t, s, key, sess.ID, "cat /opt/keep/file"); out != "kept" {
			t.Errorf("/opt/keep/file = %q", out)
		}
		// The sandbox writes to its own upper dir, never to a layer.
		run(t, s, key, sess.ID, "echo changed > /opt/keep/file && rm /bin/ls")
		if out := run(t, s, key, sess.ID, "cat /opt/keep/file"); out != "changed" {
			t.Errorf("write in sandbox: %q", out)
		}
	})
	t.Run("second create reuses the cache", func(t *testing.T) {
		before := len(f.reg.Requests())
		layersBefore, _ := cacheDirs(t, s)
		status, b, id := createWithImage(t, s, key, f.ref)
		if status != 201 {
			t.Fatalf("create: %d %s", status, b)
		}
		if reqs := f.reg.Requests()[before:]; len(reqs) != 0 {
			t.Errorf("second create asked the registry: %v", reqs)
		}
		if layersAfter, _ := cacheDirs(t, s); len(layersAfter) != len(layersBefore) {
			t.Errorf("layers %v -> %v", layersBefore, layersAfter)
		}
		// The first sandbox's changes are not in the image.
		if out := run(t, s, key, id, "cat /opt/keep/file; ls /bin/ls"); out != "kept\n/bin/ls" {
			t.Errorf("second sandbox sees %q", out)
		}
	})
	t.Run("images list and get", func(t *testing.T) {
		r := s.cli(t, key, nil, "images", "list", "--json")
		var l api.ImageList
		decodeJSON(t, []byte(r.Stdout), &l)
		if len(l.Images) != 1 || l.Images[0].Ref != f.ref || l.Images[0].Layers != 3 || l.Images[0].WorkingDir != "/srv/app" {
			t.Fatalf("images list: %+v", l.Images)
		}
		img, err := s.Client(key).GetImage(t.Context(), f.ref)
		if err != nil || img.Digest != l.Images[0].Digest {
			t.Errorf("get image: %+v %v", img, err)
		}
	})
	t.Run("registry gone: cached tag still starts, new tag is unavailable", func(t *testing.T) {
		f.reg.Close()
		status, b, id := createWithImage(t, s, key, f.ref)
		if status != 201 {
			t.Fatalf("cached image without registry: %d %s", status, b)
		}
		if out := run(t, s, key, id, "cat /opt/keep/file"); out != "kept" {
			t.Errorf("got %q", out)
		}
		status, b, _ = createWithImage(t, s, key, f.reg.Host+"/test/multi:other")
		expectError(t, status, b, 503, "unavailable")
		if !strings.Contains(string(b), f.reg.Host) {
			t.Errorf("error does not name the registry: %s", b)
		}
	})
	s.Client(key).DeleteSession(t.Context(), sess.ID)
	if left := s.leaks(t, sess.ID); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}

	t.Run("cache survives a restart; --default-image can be an OCI image", func(t *testing.T) {
		if err := s.stop(); err != nil {
			t.Fatal(err)
		}
		s2 := startServer(t, s.DataDir, "--insecure-registry", f.reg.Host, "--default-image", f.ref)
		t.Cleanup(func() { s2.stop() })
		sess, err := s2.Client(key).CreateSession(t.Context(), api.CreateSessionRequest{Type: "sandbox", Ephemeral: true})
		if err != nil {
			t.Fatalf("create with the default image, registry gone: %v", err)
		}
		defer s2.Client(key).DeleteSession(context.Background(), sess.ID)
		if sess.Image != f.ref {
			t.Errorf("session image %q, want the default %q", sess.Image, f.ref)
		}
		if out := run(t, s2, key, sess.ID, "pwd; ls /opt/app"); out != "/srv/app\nnew" {
			t.Errorf("got %q", out)
		}
	})
}

func TestImageUser(t *testing.T) {
	reg := imagetest.StartRegistry(t)
	img := imagetest.Image(t, v1.Config{User: "app"}, imagetest.BusyboxLayer(t))
	ref := reg.Push(t, "test/user:v1", img)
	numeric := reg.Push(t, "test/user:numeric", imagetest.Image(t, v1.Config{User: "4242:4343"}, imagetest.BusyboxLayer(t)))
	unknown := reg.Push(t, "test/user:unknown", imagetest.Image(t, v1.Config{User: "nobody-here"}, imagetest.BusyboxLayer(t)))
	s := newServer(t, "--insecure-registry", reg.Host)
	key := s.account(t, "paid")

	status, b, id := createWithImage(t, s, key, ref)
	if status != 201 {
		t.Fatalf("create: %d %s", status, b)
	}
	if out := run(t, s, key, id, `id -u; id -g; id -G; echo $HOME; pwd; touch x && echo writable`); out != "1000\n1000\n1000 2000\n/home/app\n/workspace\nwritable" {
		t.Errorf("user image: %q", out)
	}
	status, b, id = createWithImage(t, s, key, numeric)
	if status != 201 {
		t.Fatalf("create: %d %s", status, b)
	}
	if out := run(t, s, key, id, `id -u; id -g`); out != "4242\n4343" {
		t.Errorf("numeric user: %q", out)
	}
	status, b, _ = createWithImage(t, s, key, unknown)
	expectError(t, status, b, 422, "unprocessable")
}

func TestImageBadInput(t *testing.T) {
	f := newImageFixture(t)
	escape := f.reg.Push(t, "test/escape:v1", imagetest.Image(t, v1.Config{}, f.base,
		imagetest.Layer(t, imagetest.Entry{Name: "../../../../tmp/chaser-escaped", Body: []byte("x")})))
	corruptLayer := imagetest.Layer(t, imagetest.Entry{Name: "etc/corrupt", Body: []byte(strings.Repeat("corrupt me ", 1000))})
	corrupt := f.reg.Push(t, "test/corrupt:v1", imagetest.Image(t, v1.Config{}, f.base, corruptLayer))
	f.reg.Corrupt(imagetest.LayerDigest(t, corruptLayer))
	// 127.0.0.1:1 is listed, so that pulls reach it and find nothing there.
	s := newServer(t, "--insecure-registry", f.reg.Host, "--allow-registry", "127.0.0.1:1")
	key := s.account(t, "free")

	for _, tc := range []struct {
		name, ref    string
		status       int
		code, naming string
	}{
		{"malformed reference", "Not A//Valid::Ref", 400, "invalid_argument", ""},
		{"unknown tag", f.reg.Host + "/test/multi:nope", 404, "not_found", f.reg.Host + "/test/multi:nope"},
		{"unknown repository", f.reg.Host + "/test/nothing:v1", 404, "not_found", f.reg.Host + "/test/nothing:v1"},
		{"unreachable registry", "127.0.0.1:1/test/multi:v1", 503, "unavailable", "127.0.0.1:1"},
		{"layer escaping its root", escape, 422, "unprocessable", ""},
		{"digest mismatch", corrupt, 422, "unprocessable", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, b, _ := createWithImage(t, s, key, tc.ref)
			expectError(t, status, b, tc.status, tc.code)
			t.Logf("%d %s", status, b)
			if tc.naming != "" && !strings.Contains(string(b), tc.naming) {
				t.Errorf("error does not name %s: %s", tc.naming, b)
			}
			list, err := s.Client(key).ListSessions(t.Context())
			if err != nil || len(list) != 0 {
				t.Errorf("failed create left sessions: %v %v", list, err)
			}
			if _, tmp := cacheDirs(t, s); len(tmp) != 0 {
				t.Errorf("partial unpacks left: %v", tmp)
			}
			if m := hostMounts(t, s.DataDir); len(m) != 0 {
				t.Errorf("mounts left: %v", m)
			}
		})
	}
	if _, err := os.Stat("/tmp/chaser-escaped"); err == nil {
		os.Remove("/tmp/chaser-escaped")
		t.Error("the escaping layer wrote /tmp/chaser-escaped")
	}
	// Only the base layer (shared, verified) may be cached: nothing of the
	// refused layers.
	layers, _ := cacheDirs(t, s)
	if len(layers) > 1 {
		t.Errorf("layers cached after refused pulls: %v", layers)
	}
	// The API answers the same for a pull.
	status, b := s.do(t, key, "POST", "/v1/images", `{"ref":"`+f.reg.Host+`/test/multi:nope"}`)
	expectError(t, status, b, 404, "not_found")
}

func TestImageConcurrentPullsAndGC(t *testing.T) {
	f := newImageFixture(t)
	other := f.reg.Push(t, "test/other:v1", imagetest.Image(t, v1.Config{}, f.base,
		imagetest.Layer(t, imagetest.Entry{Name: "etc/other", Body: []byte("other\n")})))
	index := f.reg.PushIndex(t, "test/index:v1", map[string]v1.Image{
		"linux/amd64": imagetest.Image(t, v1.Config{Env: []string{"PATH=/bin", "ARCH=amd64"}}, f.base),
		"linux/arm64": imagetest.Image(t, v1.Config{Env: []string{"PATH=/bin", "ARCH=arm64"}}, f.base,
			imagetest.Layer(t, imagetest.Entry{Name: "etc/arm", Body: []byte("arm")})),
	})
	s := newServer(t, "--insecure-registry", f.reg.Host)
	key := s.account(t, "paid")

	// Three creates of the same image and one of another sharing its base
	// layer, at once: each blob is fetched once.
	var wg sync.WaitGroup
	ids := make([]string, 4)
	errs := make([]string, 4)
	for i, ref := range []string{f.ref, f.ref, f.ref, other} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sess, err := s.Client(key).CreateSession(context.Background(), api.CreateSessionRequest{Type: "sandbox", Ephemeral: true, Image: ref})
			if err != nil {
				errs[i] = err.Error()
				return
			}
			ids[i] = sess.ID
		}()
	}
	wg.Wait()
	for i, id := range ids {
		if id == "" {
			t.Fatalf("create %d: %s", i, errs[i])
		}
		t.Cleanup(func() { s.Client(key).DeleteSession(context.Background(), id) })
	}
	for d, n := range imagetest.BlobGets(f.reg.Requests()) {
		if n != 1 {
			t.Errorf("blob %s fetched %d times", d, n)
		}
	}
	if n := imagetest.BlobGets(f.reg.Requests())[f.layer[0]]; n != 1 {
		t.Errorf("shared base layer fetched %d times", n)
	}

	// An index resolves to this host's platform.
	status, b, id := createWithImage(t, s, key, index)
	if status != 201 {
		t.Fatalf("index create: %d %s", status, b)
	}
	if out := run(t, s, key, id, "echo $ARCH; test ! -e /etc/arm && echo no-arm"); out != "amd64\nno-arm" {
		t.Errorf("index platform: %q", out)
	}

	// Removing is for admins.
	r := s.cli(t, key, nil, "images", "rm", other)
	if r.Code == 0 || !strings.Contains(r.Stderr, "admin") {
		t.Errorf("non-admin rm: exit %d %s", r.Code, r.Stderr)
	}
	// An admin removes "other" while a sandbox uses it: the image goes,
	// its own layer stays while mounted, then goes with the next GC.
	layersBefore, _ := cacheDirs(t, s)
	r = s.cli(t, s.AdminKey, nil, "images", "rm", other)
	if r.Code != 0 {
		t.Fatalf("admin rm: %s", r.Stderr)
	}
	if _, err := s.Client(key).GetImage(t.Context(), other); err == nil {
		t.Error("removed image is still listed")
	}
	if layers, _ := cacheDirs(t, s); len(layers) != len(layersBefore) {
		t.Errorf("a mounted layer was collected: %v -> %v", layersBefore, layers)
	}
	if out := run(t, s, key, ids[3], "cat /etc/other"); out != "other" {
		t.Errorf("sandbox of removed image: %q", out)
	}
	if err := s.Client(key).DeleteSession(t.Context(), ids[3]); err != nil {
		t.Fatal(err)
	}
	// Removing the index image runs GC: "other"'s layer is unused now,
	// the shared base layer is not.
	if r := s.cli(t, s.AdminKey, nil, "images", "rm", index); r.Code != 0 {
		t.Fatalf("admin rm: %s", r.Stderr)
	}
	if layers, _ := cacheDirs(t, s); len(layers) != len(layersBefore)-1 {
		t.Errorf("GC: layers %v -> %v, want one fewer", layersBefore, layers)
	}
	if out := run(t, s, key, ids[0], "cat /opt/keep/file"); out != "kept" {
		t.Errorf("running sandbox after GC: %q", out)
	}
}

// TestImagePullProgress runs the CLI on a terminal (script(1) gives it a
// pty): a create that pulls draws a progress bar; --json stays quiet.
func TestImagePullProgress(t *testing.T) {
	if _, err := exec.LookPath("script"); err != nil {
		t.Fatal("script(1) is needed to give the CLI a terminal: apt-get install -y util-linux")
	}
	reg := imagetest.StartRegistry(t)
	base := imagetest.BusyboxLayer(t)
	ref := reg.Push(t, "test/progress:v1", imagetest.Image(t, v1.Config{}, base))
	ref2 := reg.Push(t, "test/progress:v2", imagetest.Image(t, v1.Config{}, base,
		imagetest.Layer(t, imagetest.Entry{Name: "etc/v2", Body: []byte("2")})))
	s := newServer(t, "--insecure-registry", reg.Host)
	key := s.account(t, "paid")

	onTerminal := func(args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(t.Context(), "script", "-qec", binary+" "+strings.Join(args, " "), "/dev/null")
		cmd.Env = append(os.Environ(), "CHASER_API_URL="+s.URL, "CHASER_API_KEY="+key)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("chaser %v on a terminal: %v: %s", args, err, out)
		}
		return string(out)
	}
	out := onTerminal("sandbox", "--ephemeral", "--image", ref)
	t.Logf("terminal output: %q", out)
	if !strings.Contains(out, "pulling "+ref) || !strings.Contains(out, "2/2 layers") && !strings.Contains(out, "1/1 layers") {
		t.Errorf("no progress bar on a terminal:\n%q", out)
	}
	id := strings.TrimSpace(out[strings.LastIndex(strings.TrimSpace(out), "\n")+1:])
	if !strings.HasPrefix(id, "s-") {
		t.Fatalf("last line is not a session id: %q", out)
	}
	t.Cleanup(func() { s.Client(key).DeleteSession(context.Background(), id) })

	out = onTerminal("sandbox", "--ephemeral", "--image", ref2, "--json")
	if strings.Contains(out, "pulling") {
		t.Errorf("--json printed progress:\n%q", out)
	}
	var sess api.Session
	decodeJSON(t, []byte(strings.ReplaceAll(out, "\r\n", "\n")), &sess)
	t.Cleanup(func() { s.Client(key).DeleteSession(context.Background(), sess.ID) })
}

// TestImageRegistryGoneMidPull breaks a layer download off halfway: the
// create fails as unavailable, naming the registry, and leaves nothing; once
// the registry answers again the same create works.
func TestImageRegistryGoneMidPull(t *testing.T) {
	reg := imagetest.StartRegistry(t)
	base := imagetest.BusyboxLayer(t)
	ref := reg.Push(t, "test/cut:v1", imagetest.Image(t, v1.Config{}, base))
	reg.CutOnce(imagetest.LayerDigest(t, base), 200<<10)
	s := newServer(t, "--insecure-registry", reg.Host)
	key := s.account(t, "paid")

	status, b, _ := createWithImage(t, s, key, ref)
	expectError(t, status, b, 503, "unavailable")
	t.Logf("%s", b)
	if !strings.Contains(string(b), reg.Host) {
		t.Errorf("error does not name the registry: %s", b)
	}
	if layers, tmp := cacheDirs(t, s); len(layers)+len(tmp) != 0 {
		t.Errorf("left behind: layers %v, tmp %v", layers, tmp)
	}
	if list, _ := s.Client(key).ListImages(t.Context()); len(list) != 0 {
		t.Errorf("image cached after a broken pull: %v", list)
	}
	status, b, id := createWithImage(t, s, key, ref)
	if status != 201 {
		t.Fatalf("create after the registry came back: %d %s", status, b)
	}
	if out := run(t, s, key, id, "busybox echo back"); out != "back" {
		t.Errorf("got %q", out)
	}
}
