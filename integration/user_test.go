package integration

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coder/websocket"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/image/imagetest"
)

// devImageLayer is a devcontainer-style image: busybox, a user dev
// (1000:1000, home /home/dev) and a group tools (3000) listing dev, in the
// layer's own /etc/passwd and /etc/group. /home/dev/app (the WorkingDir)
// is missing: the agent makes it, owned by dev. /root is closed (0700).
func devImageLayer(t *testing.T) v1.Layer {
	bb, err := os.ReadFile(imagetest.BusyboxPath)
	if err != nil {
		t.Fatalf("busybox-static is missing: %v", err)
	}
	entries := []imagetest.Entry{
		{Name: "bin/", Type: tar.TypeDir},
		{Name: "bin/busybox", Mode: 0o755, Body: bb},
		{Name: "etc/", Type: tar.TypeDir},
		{Name: "etc/passwd", Body: []byte("root:x:0:0:root:/root:/bin/sh\ndev:x:1000:1000:dev:/home/dev:/bin/sh\n")},
		{Name: "etc/group", Body: []byte("root:x:0:\ndev:x:1000:\ntools:x:3000:dev\n")},
		{Name: "root/", Type: tar.TypeDir, Mode: 0o700},
		{Name: "home/", Type: tar.TypeDir},
		{Name: "home/dev/", Type: tar.TypeDir, Uid: 1000, Gid: 1000},
		{Name: "tmp/", Type: tar.TypeDir, Mode: 0o1777},
	}
	for _, applet := range []string{"sh", "id", "pwd", "echo", "stat", "touch", "ls", "cat", "sleep", "stty", "mkdir", "test", "env", "tty"} {
		entries = append(entries, imagetest.Entry{Name: "bin/" + applet, Type: tar.TypeSymlink, Link: "busybox"})
	}
	return imagetest.Layer(t, entries...)
}

// userImages pushes the dev image and a shell-less one (only a static
// busybox, no applet links: no /bin/sh) and starts a server that may pull
// them.
func userImages(t *testing.T) (s *Server, key, devRef, bareRef string) {
	reg := imagetest.StartRegistry(t)
	devRef = reg.Push(t, "test/dev:v1", imagetest.Image(t, v1.Config{User: "dev", WorkingDir: "/home/dev/app", Env: []string{"PATH=/bin"}}, devImageLayer(t)))
	bb, err := os.ReadFile(imagetest.BusyboxPath)
	if err != nil {
		t.Fatal(err)
	}
	bare := imagetest.Layer(t, imagetest.Entry{Name: "bin/", Type: tar.TypeDir}, imagetest.Entry{Name: "bin/busybox", Mode: 0o755, Body: bb})
	bareRef = reg.Push(t, "test/bare:v1", imagetest.Image(t, v1.Config{Env: []string{"PATH=/bin"}}, bare))
	s = newServer(t, "--insecure-registry", reg.Host)
	return s, s.account(t, "paid"), devRef, bareRef
}

// execJSON posts a raw exec body to a session.
func execJSON(t *testing.T, s *Server, key, id, body string) (int, api.ExecResult, []byte) {
	t.Helper()
	status, b := s.do(t, key, "POST", "/v1/sessions/"+id+"/exec", body)
	var res api.ExecResult
	if status == 200 {
		decodeJSON(t, b, &res)
	}
	return status, res, b
}

// TestImageUserEverywhere checks that every way into a sandbox — exec,
// the three terminal modes, chaser shell, self-test, the file calls, MCP
// and chaser dev — runs as the image's USER in its WorkingDir with its
// HOME, and that new files belong to that user.
func TestImageUserEverywhere(t *testing.T) {
	s, key, devRef, _ := userImages(t)
	status, b, id := createWithImage(t, s, key, devRef)
	if status != 201 {
		t.Fatalf("create: %d %s", status, b)
	}
	const who = `echo "$(id -un) $(id -gn) $(pwd) $HOME"`

	t.Run("exec", func(t *testing.T) {
		if out := run(t, s, key, id, who+"; id -G"); out != "dev dev /home/dev/app /home/dev\n1000 3000" {
			t.Errorf("default: %q", out)
		}
		for body, want := range map[string]string{
			`{"command":` + jsonString(who) + `,"user":"root"}`:                  "root root /home/dev/app /root",
			`{"command":` + jsonString(who) + `,"user":"dev","cwd":"/tmp"}`:      "dev dev /tmp /home/dev",
			`{"command":"echo $(id -u):$(id -g) $HOME","user":"1234:2345"}`:      "1234:2345 /",
			`{"command":"echo $(id -u):$(id -g) $HOME","user":"1000"}`:           "1000:1000 /home/dev",
			`{"command":"echo $(id -un):$(id -g)","user":"dev:3000"}`:            "dev:3000",
			`{"argv":["id","-un"],"user":"root"}`:                                "root",
			`{"command":"echo $HOME","user":"root","env":{"HOME":"/elsewhere"}}`: "/elsewhere",
		} {
			status, res, b := execJSON(t, s, key, id, body)
			if status != 200 || res.ExitCode != 0 || strings.TrimSpace(res.Stdout) != want {
				t.Errorf("%s: %d %s, want %q", body, status, b, want)
			}
		}
	})

	t.Run("terminals", func(t *testing.T) {
		w := s.dialWS(t, key, id, url.Values{"mode": {"exec"}, "command": {who}})
		if out, _ := w.until("exit"); !strings.Contains(out, "dev dev /home/dev/app /home/dev") {
			t.Errorf("exec mode: %q", out)
		}
		w = s.dialWS(t, key, id, url.Values{"mode": {"agent"}})
		w.run(who)
		if out, done := w.until("done"); out != "dev dev /home/dev/app /home/dev\n" || done.Cwd != "/home/dev/app" {
			t.Errorf("agent mode: %q %+v", out, done)
		}
		w = s.dialWS(t, key, id, url.Values{})
		w.keys(`echo "U=$(id -un) P=$(pwd) H=$HOME"` + "\r")
		w.untilOutput("U=dev P=/home/dev/app H=/home/dev")
		w.keys("exit\r")
		w.until("exit")
		// user and cwd as query parameters.
		w = s.dialWS(t, key, id, url.Values{"mode": {"exec"}, "command": {who}, "user": {"root"}, "cwd": {"/root"}})
		if out, _ := w.until("exit"); !strings.Contains(out, "root root /root /root") {
			t.Errorf("exec mode as root in /root: %q", out)
		}
	})

	t.Run("shell", func(t *testing.T) {
		env := "CHASER_API_URL=" + s.URL + " CHASER_API_KEY=" + key
		tm := newTmux(t, 100, 30, "env "+env+" "+binary+" shell "+id+"; echo CLI-EXIT=$?; sleep 600")
		tm.waitFor("$")
		tm.send(`echo "U=$(id -un) P=$(pwd) H=$HOME"`, "Enter")
		tm.waitFor("U=dev P=/home/dev/app H=/home/dev")
		tm.send("exit 0", "Enter")
		tm.waitFor("CLI-EXIT=0")
	})

	t.Run("self-test", func(t *testing.T) {
		st, body := s.do(t, key, "POST", "/v1/sessions/"+id+"/self-test", "")
		var res api.SelfTest
		if st != 200 {
			t.Fatalf("self-test: %d %s", st, body)
		}
		decodeJSON(t, body, &res)
		if res.User != "dev" || res.Cwd != "/home/dev/app" || res.Home != "/home/dev" {
			t.Errorf("self-test says user %q cwd %q home %q, want dev /home/dev/app /home/dev", res.User, res.Cwd, res.Home)
		}
		r := s.cli(t, key, nil, "sessions", "self-test", id)
		if !strings.Contains(r.Stdout, "dev (home /home/dev") || !strings.Contains(r.Stdout, "/home/dev/app") {
			t.Errorf("chaser sessions self-test:\n%s", r.Stdout)
		}
	})

	t.Run("files", func(t *testing.T) {
		up := func(query string, content string) {
			t.Helper()
			st, _, b := s.send(t, key, "POST", sessPath(id, "/upload?"+query), "application/octet-stream", strings.NewReader(content))
			if st != 200 {
				t.Fatalf("upload %s: %d %s", query, st, b)
			}
		}
		up("path="+q("/home/dev/app/new/sub/a.txt"), "a")
		up("path="+q("/home/dev/app/b.txt")+"&user=root", "b")
		up("path="+q("/home/dev/app/c.txt")+"&user=1234:2345", "c")
		ct, form := multipartBody(t, []field{{"path", "/home/dev/app/d.txt"}, {"user", "root"}}, []byte("d"), -1)
		if st, _, b := s.send(t, key, "POST", sessPath(id, "/upload"), ct, strings.NewReader(string(form))); st != 200 {
			t.Fatalf("multipart upload with user: %d %s", st, b)
		}
		for body, want := range map[string]int{
			`{"path":"/home/dev/app/made/deep"}`:             201,
			`{"path":"/home/dev/app/rootdir","user":"root"}`: 201,
		} {
			if st, b := s.do(t, key, "POST", sessPath(id, "/files/mkdir"), body); st != want {
				t.Fatalf("mkdir %s: %d %s", body, st, b)
			}
		}
		if st, b := s.do(t, key, "POST", sessPath(id, "/files/move"), `{"from":"/home/dev/app/new/sub/a.txt","to":"/home/dev/app/made/a.txt"}`); st != 200 {
			t.Fatalf("move: %d %s", st, b)
		}
		// An existing file keeps its owner when replaced.
		up("path="+q("/home/dev/app/b.txt"), "b2")
		out := run(t, s, key, id, "cd /home/dev/app && stat -c '%n %u:%g' new new/sub made made/deep made/a.txt b.txt c.txt d.txt rootdir")
		want := "new 1000:1000\nnew/sub 1000:1000\nmade 1000:1000\nmade/deep 1000:1000\nmade/a.txt 1000:1000\nb.txt 0:0\nc.txt 1234:2345\nd.txt 0:0\nrootdir 0:0"
		if out != want {
			t.Errorf("owners:\n%s\nwant:\n%s", out, want)
		}
		// The user can edit what the API wrote.
		if out := run(t, s, key, id, "echo more >> /home/dev/app/made/a.txt && touch /home/dev/app/new/sub/x && echo ok"); out != "ok" {
			t.Errorf("edit as dev: %q", out)
		}
		if st, b := s.do(t, key, "POST", sessPath(id, "/files/mkdir"), `{"path":"/home/dev/app/x","user":"nobody-here"}`); st != 400 || !strings.Contains(string(b), "nobody-here") {
			t.Errorf("mkdir as an unknown user: %d %s", st, b)
		}
		if st, _, b := s.send(t, key, "POST", sessPath(id, "/upload?path=/home/dev/app/y&user=nobody-here"), "text/plain", strings.NewReader("y")); st != 400 {
			t.Errorf("upload as an unknown user: %d %s", st, b)
		}
		if out := run(t, s, key, id, "ls /home/dev/app"); strings.Contains(out, "y") || strings.Contains(out, "x\n") {
			t.Errorf("a refused call left something behind: %q", out)
		}
	})

	t.Run("mcp", func(t *testing.T) {
		_, a := callTerminal(t, s, key, map[string]any{"session_id": id,
			"xml": `<write_file path="/home/dev/app/mcp/w.txt">one</write_file>`})
		if a.Result == nil || a.Result.IsError {
			t.Fatalf("write_file: %+v", a)
		}
		// apply_edit on a file root made keeps root's; on dev's, dev's.
		_, a = callTerminal(t, s, key, map[string]any{"session_id": id,
			"xml": `<apply_edit path="/home/dev/app/mcp/w.txt"><search>one</search><replace>two</replace></apply_edit>`})
		if a.Result == nil || a.Result.IsError {
			t.Fatalf("apply_edit: %+v", a)
		}
		if out := run(t, s, key, id, "stat -c '%U:%G' /home/dev/app/mcp /home/dev/app/mcp/w.txt; cat /home/dev/app/mcp/w.txt"); out != "dev:dev\ndev:dev\ntwo" {
			t.Errorf("after MCP: %q", out)
		}
	})

	t.Run("dev", func(t *testing.T) {
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "pkg", "app.sh"), "echo app\n")
		res := s.cli(t, key, nil, "dev", dir, "--session", id, "-c",
			`id -un; pwd; touch made-by-cmd pkg/also && stat -c '%n %U' . pkg pkg/app.sh made-by-cmd`)
		want := "dev\n/workspace\n. dev\npkg dev\npkg/app.sh dev\nmade-by-cmd dev\n"
		if res.Code != 0 || res.Stdout != want {
			t.Fatalf("chaser dev -c: code %d stdout %q stderr %q, want %q", res.Code, res.Stdout, res.Stderr, want)
		}
	})
}

// TestExecArgvAndStartErrors: argv runs without a shell (a distroless
// image), and what keeps a command from starting is a 400 naming the
// cause, never a 500 about fork/exec.
func TestExecArgvAndStartErrors(t *testing.T) {
	s, key, devRef, bareRef := userImages(t)
	status, b, bare := createWithImage(t, s, key, bareRef)
	if status != 201 {
		t.Fatalf("create bare: %d %s", status, b)
	}
	status, b, dev := createWithImage(t, s, key, devRef)
	if status != 201 {
		t.Fatalf("create dev: %d %s", status, b)
	}
	for _, c := range []struct{ id, body, want string }{
		{bare, `{"argv":["/bin/busybox","echo","hi"]}`, "hi\n"},
		{bare, `{"argv":["busybox","sh","-c","echo via PATH $0","x y"]}`, "via PATH x y\n"},
		{bare, `{"argv":["/bin/busybox","pwd"]}`, "/workspace\n"},
		{dev, `{"argv":["id","-un"],"cwd":"/tmp"}`, "dev\n"},
	} {
		status, res, b := execJSON(t, s, key, c.id, c.body)
		if status != 200 || res.ExitCode != 0 || res.Stdout != c.want {
			t.Errorf("%s: %d %s, want stdout %q", c.body, status, b, c.want)
		}
	}
	// Streaming and background take argv too.
	status, b = s.do(t, key, "POST", "/v1/sessions/"+bare+"/exec", `{"argv":["/bin/busybox","echo","streamed"],"stream":true}`)
	if status != 200 || !strings.Contains(string(b), `"data":"streamed\n"`) {
		t.Errorf("stream argv: %d %s", status, b)
	}
	for _, c := range []struct{ id, body, msg string }{
		{bare, `{"command":"echo hi"}`, "no /bin/sh"},
		{bare, `{"argv":["nosuchtool","--flag"]}`, "nosuchtool"},
		{bare, `{"argv":["/bin/busybox"],"cwd":"/nowhere"}`, "/nowhere"},
		{dev, `{"command":"pwd","cwd":"/root"}`, "cwd /root: permission denied for user dev"},
		{dev, `{"argv":["pwd"],"cwd":"/root"}`, "cwd /root: permission denied for user dev"},
		{dev, `{"command":"id","user":"nobody-here"}`, "nobody-here"},
		{dev, `{"command":"id","user":"dev:nogroup"}`, "nogroup"},
		{dev, `{"command":"id","user":"a:b:c"}`, "user"},
		{dev, `{"command":"id","argv":["id"]}`, "argv"},
		{dev, `{"argv":[]}`, "command"},
		{dev, `{"argv":[""]}`, "argv"},
		{dev, `{"argv":["/etc/passwd"]}`, "/etc/passwd"},
	} {
		status, _, b := execJSON(t, s, key, c.id, c.body)
		var e api.ErrorBody
		_ = json.Unmarshal(b, &e)
		if status != 400 || e.Error.Code != "invalid_argument" || !strings.Contains(e.Error.Message, c.msg) {
			t.Errorf("%s: %d %s, want 400 naming %q", c.body, status, b, c.msg)
		}
	}
	// The same as root goes through.
	if status, res, b := execJSON(t, s, key, dev, `{"command":"pwd","cwd":"/root","user":"root"}`); status != 200 || res.Stdout != "/root\n" {
		t.Errorf("cwd /root as root: %d %s", status, b)
	}
	// Terminals: the same checks, answered before the upgrade.
	for _, c := range []struct {
		id  string
		q   url.Values
		msg string
	}{
		{bare, url.Values{"mode": {"human"}}, "no /bin/sh"},
		{dev, url.Values{"cwd": {"/root"}}, "cwd /root: permission denied for user dev"},
		{dev, url.Values{"user": {"nobody-here"}}, "nobody-here"},
	} {
		_, resp, err := websocket.Dial(t.Context(), s.wsURL(c.id, c.q), &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + key}}})
		if err == nil || resp == nil {
			t.Errorf("pty %v: upgraded or no answer: %v", c.q, err)
			continue
		}
		var body bytes.Buffer
		body.ReadFrom(resp.Body)
		if resp.StatusCode != 400 || !strings.Contains(body.String(), c.msg) {
			t.Errorf("pty %v: %d %s, want 400 naming %q", c.q, resp.StatusCode, body.String(), c.msg)
		}
	}
	// POST /v1/exec (host image) takes argv as well.
	status, b = s.do(t, key, "POST", "/v1/exec", `{"argv":["echo","targetless"],"ephemeral":true}`)
	if status != 200 || !strings.Contains(string(b), `"stdout":"targetless\n"`) {
		t.Errorf("targetless argv: %d %s", status, b)
	}
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// TestCLIUserFlag: `chaser shell --user` (with -c, and a piped script) and
// `chaser upload --user` pick another user than the image's.
func TestCLIUserFlag(t *testing.T) {
	s, key, devRef, _ := userImages(t)
	status, b, id := createWithImage(t, s, key, devRef)
	if status != 201 {
		t.Fatalf("create: %d %s", status, b)
	}
	for _, tc := range []struct {
		name  string
		stdin string
		args  []string
		want  string
	}{
		{"shell -c, image user", "", []string{"shell", id, "-c", "id -un"}, "dev"},
		{"shell -c --user root", "", []string{"shell", id, "--user", "root", "-c", "id -un"}, "root"},
		{"shell -c --user uid:gid", "", []string{"shell", id, "--user", "1000:3000", "-c", "id -u; id -g"}, "1000\n3000"},
		{"piped script --user root", "id -un\n", []string{"shell", id, "--user", "root"}, "root"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var in io.Reader // nil: no stdin at all
			if tc.stdin != "" {
				in = strings.NewReader(tc.stdin)
			}
			r := s.cli(t, key, in, tc.args...)
			if r.Code != 0 || strings.TrimSpace(r.Stdout) != tc.want {
				t.Fatalf("chaser %v: code %d stdout %q stderr %q, want %q", tc.args, r.Code, r.Stdout, r.Stderr, tc.want)
			}
		})
	}
	if r := s.cli(t, key, nil, "shell", id, "--user", "nosuchuser", "-c", "true"); r.Code == 0 || !strings.Contains(r.Stderr, "nosuchuser") {
		t.Errorf("unknown user: code %d stderr %q", r.Code, r.Stderr)
	}

	for _, tc := range []struct{ user, path, want string }{
		{"", "/home/dev/app/mine.txt", "dev:dev"},
		{"root", "/home/dev/app/sub/roots.txt", "root:root"},
	} {
		args := []string{"upload", id, "-", tc.path}
		if tc.user != "" {
			args = append(args, "--user", tc.user)
		}
		if r := s.cli(t, key, strings.NewReader("x"), args...); r.Code != 0 {
			t.Fatalf("chaser %v: %d %s", args, r.Code, r.Stderr)
		}
		r := s.cli(t, key, nil, "shell", id, "-c", "stat -c %U:%G "+tc.path)
		if got := strings.TrimSpace(r.Stdout); got != tc.want {
			t.Errorf("upload --user %q: %s owned by %q, want %q", tc.user, tc.path, got, tc.want)
		}
	}
}
