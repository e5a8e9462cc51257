package integration

import (
	"archive/tar"
	"context"
	"encoding/base64"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

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

// TestImageDeviceNodes pulls an image whose layer holds device nodes, as
// every debootstrap or `docker import` root filesystem does: the pull
// succeeds and counts them, no node is created on the host, and a sandbox
// of the image runs commands (its /dev is the runtime's own).
func TestImageDeviceNodes(t *testing.T) {
	reg := imagetest.StartRegistry(t)
	devs := imagetest.Layer(t,
		imagetest.Entry{Name: "dev/", Type: tar.TypeDir},
		imagetest.Entry{Name: "dev/null", Type: tar.TypeChar, Mode: 0o666, Major: 1, Minor: 3},
		imagetest.Entry{Name: "dev/console", Type: tar.TypeChar, Mode: 0o600, Major: 5, Minor: 1},
		imagetest.Entry{Name: "dev/sda", Type: tar.TypeBlock, Mode: 0o660, Major: 8, Minor: 0},
		imagetest.Entry{Name: "dev/null-again", Type: tar.TypeLink, Link: "dev/null"},
		imagetest.Entry{Name: "opt/mem", Type: tar.TypeChar, Mode: 0o640, Major: 1, Minor: 1},
		imagetest.Entry{Name: "run/initctl", Type: tar.TypeFifo, Mode: 0o600},
		imagetest.Entry{Name: "etc/debian_version", Body: []byte("12.0\n")},
	)
	ref := reg.Push(t, "test/rootfs:v1", imagetest.Image(t, v1.Config{Env: []string{"PATH=/bin"}}, imagetest.BusyboxLayer(t), devs))
	s := newServer(t, "--insecure-registry", reg.Host)
	key := s.account(t, "paid")

	r := s.cli(t, key, nil, "images", "pull", ref, "--json")
	if r.Code != 0 {
		t.Fatalf("chaser images pull: exit %d: %s", r.Code, r.Stderr)
	}
	var img api.Image
	decodeJSON(t, []byte(r.Stdout), &img)
	// dev/null, dev/console, dev/sda, opt/mem and the hard link to dev/null.
	if img.SkippedDevices != 5 {
		t.Errorf("skipped_devices = %d, want 5: %s", img.SkippedDevices, r.Stdout)
	}
	status, b := s.do(t, key, "POST", "/v1/images", `{"ref":"`+ref+`"}`)
	if status != 200 || !strings.Contains(string(b), `"skipped_devices":5`) {
		t.Errorf("POST /v1/images: %d %s", status, b)
	}
	if logShows(s, "device nodes skipped"); strings.Count(s.Log(), "device nodes skipped") != 1 {
		t.Errorf("server logged the skipped devices %d times, want once per pulled image", strings.Count(s.Log(), "device nodes skipped"))
	}

	// No layer directory holds a device node (there are no whiteouts in
	// these layers, so any character device would be one of the image's).
	filepath.WalkDir(filepath.Join(s.DataDir, "images", "l"), func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type()&(os.ModeDevice|os.ModeCharDevice) != 0 {
			t.Errorf("device node created on the host: %s", p)
		}
		return nil
	})

	status, b, id := createWithImage(t, s, key, ref)
	if status != 201 {
		t.Fatalf("create: %d %s", status, b)
	}
	out := run(t, s, key, id, "cat /etc/debian_version; echo x > /dev/null && echo null-ok; test -p /run/initctl && echo fifo; test -e /opt/mem || echo no-mem; test -e /dev/sda || echo no-sda")
	if out != "12.0\nnull-ok\nfifo\nno-mem\nno-sda" {
		t.Errorf("sandbox of an image with device nodes: %q", out)
	}
}

// TestImageDigests: `images list` shows the digest the registry reports
// for a tag (the index's for a multi-platform tag), and a REPO@DIGEST that
// is cached (pulled by digest, or by a tag that has that digest) starts with
// the registry gone.
func TestImageDigests(t *testing.T) {
	reg := imagetest.StartRegistry(t)
	base := imagetest.BusyboxLayer(t)
	platforms := func(v string) map[string]v1.Image {
		return map[string]v1.Image{
			"linux/amd64": imagetest.Image(t, v1.Config{Env: []string{"PATH=/bin", "V=" + v}}, base,
				imagetest.Layer(t, imagetest.Entry{Name: "etc/v", Body: []byte(v)})),
			"linux/arm64": imagetest.Image(t, v1.Config{Env: []string{"PATH=/bin", "V=arm-" + v}}, base),
		}
	}
	byTag := reg.PushIndex(t, "test/multi-arch:v1", platforms("1"))
	other := reg.PushIndex(t, "test/multi-arch:v2", platforms("2"))
	indexDigest, otherDigest := reg.Digest(t, byTag), reg.Digest(t, other)
	repo := reg.Host + "/test/multi-arch"
	s := newServer(t, "--insecure-registry", reg.Host)
	key := s.account(t, "paid")

	r := s.cli(t, key, nil, "images", "pull", byTag, "--json")
	if r.Code != 0 {
		t.Fatalf("pull: %s", r.Stderr)
	}
	var img api.Image
	decodeJSON(t, []byte(r.Stdout), &img)
	if img.Digest != indexDigest {
		t.Errorf("pulled digest %s, want the index digest the registry reports, %s", img.Digest, indexDigest)
	}
	if img.ManifestDigest == "" || img.ManifestDigest == indexDigest {
		t.Errorf("manifest_digest %q: want this platform's manifest", img.ManifestDigest)
	}
	r = s.cli(t, key, nil, "images", "list", "--json")
	var l api.ImageList
	decodeJSON(t, []byte(r.Stdout), &l)
	if len(l.Images) != 1 || l.Images[0].Digest != indexDigest {
		t.Errorf("images list: %+v, want digest %s", l.Images, indexDigest)
	}
	if r := s.cli(t, key, nil, "images", "list"); !strings.Contains(r.Stdout, indexDigest[:19]) {
		t.Errorf("images list does not show the index digest %s:\n%s", indexDigest, r.Stdout)
	}

	pinned := repo + "@" + indexDigest
	if r := s.cli(t, key, nil, "images", "pull", pinned, "--json"); r.Code != 0 {
		t.Fatalf("pull by digest: %s", r.Stderr)
	}
	if r := s.cli(t, key, nil, "images", "pull", other, "--json"); r.Code != 0 {
		t.Fatalf("pull: %s", r.Stderr)
	}

	reg.Close()
	for _, tc := range []struct{ ref, want string }{
		{pinned, "1"},                          // pulled by digest
		{repo + "@" + otherDigest, "2"},        // pulled by tag only
		{repo + "@" + img.ManifestDigest, "1"}, // this platform's manifest of a cached index
	} {
		status, b, id := createWithImage(t, s, key, tc.ref)
		if status != 201 {
			t.Errorf("create %s with the registry gone: %d %s", tc.ref, status, b)
			continue
		}
		if out := run(t, s, key, id, "echo $V; cat /etc/v"); out != tc.want+"\n"+tc.want {
			t.Errorf("%s: got %q", tc.ref, out)
		}
	}
}

// logShows waits a little for the server's log (copied from its stderr
// by a goroutine) to show text.
func logShows(s *Server, text string) bool {
	for range 50 {
		if strings.Contains(s.Log(), text) {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// pullStatus pulls ref through the API and returns the status and body.
func pullStatus(t *testing.T, s *Server, key, ref string) (int, []byte) {
	t.Helper()
	return s.do(t, key, "POST", "/v1/images", `{"ref":"`+ref+`"}`)
}

// TestImageRegistryTLS pulls from an HTTPS registry whose certificate is
// signed by its own CA: refused with a hint until the server trusts the
// CA, the way Docker does (certs.d/HOST/ca.crt) or Go does (SSL_CERT_FILE),
// or the registry is listed with --insecure-registry. The registry is on
// loopback, so it is listed with --allow-registry too; trusting its CA
// does not make an unlisted one reachable.
func TestImageRegistryTLS(t *testing.T) {
	reg := imagetest.StartTLSRegistry(t)
	ref := reg.Push(t, "test/tls:v1", imagetest.Image(t, v1.Config{Env: []string{"PATH=/bin"}}, imagetest.BusyboxLayer(t)))
	certs := t.TempDir()
	s := newServer(t, "--registry-certs-dir", certs, "--allow-registry", reg.Host)
	key := s.account(t, "paid")

	status, b := pullStatus(t, s, key, ref)
	expectError(t, status, b, 503, "unavailable")
	t.Logf("%s", b)
	for _, want := range []string{reg.Host + "/ca.crt", "SSL_CERT_FILE", "--insecure-registry " + reg.Host} {
		if !strings.Contains(string(b), want) {
			t.Errorf("untrusted registry: the error does not say %q: %s", want, b)
		}
	}
	if strings.Contains(string(b), certs) {
		t.Errorf("the error shows a host path: %s", b)
	}

	// Trust its CA in certs.d, without restarting the server.
	if err := os.MkdirAll(filepath.Join(certs, reg.Host), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(certs, reg.Host, "ca.crt"), reg.CA, 0o644); err != nil {
		t.Fatal(err)
	}
	status, b, id := createWithImage(t, s, key, ref)
	if status != 201 {
		t.Fatalf("create with the CA in certs.d: %d %s", status, b)
	}
	if out := run(t, s, key, id, "busybox echo tls"); out != "tls" {
		t.Errorf("got %q", out)
	}

	t.Run("SSL_CERT_FILE", func(t *testing.T) {
		caFile := filepath.Join(t.TempDir(), "ca.pem")
		os.WriteFile(caFile, reg.CA, 0o644)
		t.Setenv("SSL_CERT_FILE", caFile)
		s := newServer(t, "--registry-certs-dir", t.TempDir(), "--allow-registry", reg.Host)
		if status, b := pullStatus(t, s, s.AdminKey, ref); status != 200 {
			t.Errorf("pull with the CA in SSL_CERT_FILE: %d %s", status, b)
		}
	})
	t.Run("--insecure-registry skips verification", func(t *testing.T) {
		s := newServer(t, "--registry-certs-dir", t.TempDir(), "--insecure-registry", reg.Host)
		if status, b := pullStatus(t, s, s.AdminKey, ref); status != 200 {
			t.Errorf("pull from a listed registry: %d %s", status, b)
		}
	})
	t.Run("a trusted CA does not list a loopback registry", func(t *testing.T) {
		s := newServer(t, "--registry-certs-dir", certs) // certs holds its ca.crt by now
		status, b := pullStatus(t, s, s.AdminKey, ref)
		expectError(t, status, b, 403, "permission_denied")
		if !strings.Contains(string(b), "--allow-registry "+reg.Host) {
			t.Errorf("refusal does not name --allow-registry %s: %s", reg.Host, b)
		}
	})
}

// TestImageRegistryErrorHints: "start the server with --insecure-registry
// H" is suggested only where that flag would help. The loopback registries
// are listed with --allow-registry, so that the pulls reach them and these
// cases test the hints; an unlisted one is refused before any hint (and
// alike whether it is up or down: TestImagePullNoSSRF).
func TestImageRegistryErrorHints(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := l.Addr().String()
	l.Close()
	tlsReg := imagetest.StartTLSRegistry(t)
	tlsRef := tlsReg.Push(t, "test/tls:v1", imagetest.Image(t, v1.Config{}, imagetest.BusyboxLayer(t)))
	unlisted := closedPort(t)
	s := newServer(t, "--registry-certs-dir", t.TempDir(), "--insecure-registry", down,
		"--allow-registry", "127.0.0.1:1", "--allow-registry", tlsReg.Host)
	key := s.account(t, "free")

	for _, tc := range []struct {
		name, ref, naming string
		status            int
		code              string
		hint              bool
	}{
		{"listed as insecure but down", down + "/test/x:v1", down, 503, "unavailable", false},
		{"loopback registry down", "127.0.0.1:1/test/x:v1", "127.0.0.1:1", 503, "unavailable", false},
		// A DNS failure of a public host is covered by TestConnectionHints
		// (internal/image): looking a name up here would send a query to
		// the machine's resolver, and tests talk only to this machine.
		{"TLS failure to a registry not listed as insecure", tlsRef, tlsReg.Host, 503, "unavailable", true},
		{"unlisted loopback registry: --allow-registry only", unlisted + "/test/x:v1", "--allow-registry " + unlisted, 403, "permission_denied", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, b := pullStatus(t, s, key, tc.ref)
			expectError(t, status, b, tc.status, tc.code)
			t.Logf("%s", b)
			if !strings.Contains(string(b), tc.naming) {
				t.Errorf("error does not name %s: %s", tc.naming, b)
			}
			if got := strings.Contains(string(b), "--insecure-registry"); got != tc.hint {
				t.Errorf("--insecure-registry hint shown: %v, want %v: %s", got, tc.hint, b)
			}
		})
	}
}

// TestImageRegistryCredentials reads podman's auth.json (REGISTRY_AUTH_FILE)
// besides Docker's config, and answers a malformed credentials file with a
// clear error naming which file, never a 500 or a host path.
func TestImageRegistryCredentials(t *testing.T) {
	reg := imagetest.StartRegistry(t)
	ref := reg.Push(t, "test/private:v1", imagetest.Image(t, v1.Config{}, imagetest.BusyboxLayer(t)))
	reg.RequireAuth("alice", "s3cret")
	dir := t.TempDir()
	dockerDir := filepath.Join(dir, "docker")
	os.Mkdir(dockerDir, 0o700)
	auth := func(u string) string { return base64.StdEncoding.EncodeToString([]byte(u)) }
	dockerConfig := `{"auths":{"registry.example.invalid:5000":{"auth":"` + auth("bob:other") + `"}}}`
	authJSON := `{"auths":{"` + reg.Host + `":{"auth":"` + auth("alice:s3cret") + `"}}}`
	authFile := filepath.Join(dir, "auth.json")
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(dockerDir, "config.json"), dockerConfig)
	write(authFile, authJSON)
	t.Setenv("DOCKER_CONFIG", dockerDir)
	t.Setenv("REGISTRY_AUTH_FILE", authFile)
	s := newServer(t, "--allow-registry", reg.Host) // on loopback
	key := s.account(t, "paid")

	if status, b := pullStatus(t, s, key, ref); status != 200 {
		t.Fatalf("pull with credentials in REGISTRY_AUTH_FILE (and a Docker config without them): %d %s", status, b)
	}
	for _, tc := range []struct{ name, file, naming string }{
		{"malformed auth.json", authFile, "REGISTRY_AUTH_FILE"},
		{"malformed docker config", filepath.Join(dockerDir, "config.json"), "DOCKER_CONFIG"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The first file with credentials for the registry wins, so
			// Docker's config is read only when auth.json has none.
			write(authFile, `{"auths":{}}`)
			write(tc.file, `{"auths": {`)
			status, b := pullStatus(t, s, key, ref)
			expectError(t, status, b, 503, "unavailable")
			t.Logf("%s", b)
			if !strings.Contains(string(b), tc.naming) || !strings.Contains(string(b), "malformed") {
				t.Errorf("error does not say that %s is malformed: %s", tc.naming, b)
			}
			if strings.Contains(string(b), dir) {
				t.Errorf("error shows a host path: %s", b)
			}
			if !logShows(s, tc.file) {
				t.Errorf("the server log does not name %s", tc.file)
			}
			write(authFile, authJSON)
			write(filepath.Join(dockerDir, "config.json"), dockerConfig)
		})
	}
	t.Run("credentials do not list a loopback registry", func(t *testing.T) {
		s := newServer(t)
		status, b := pullStatus(t, s, s.AdminKey, ref)
		expectError(t, status, b, 403, "permission_denied")
		if !strings.Contains(string(b), "--allow-registry "+reg.Host) {
			t.Errorf("refusal does not name --allow-registry %s: %s", reg.Host, b)
		}
	})
}
