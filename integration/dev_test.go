package integration

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chaserhq/chaser/api"
)

// visibleWithin bounds how long a local change may take to show in the
// sandbox. The target is about a second; the bound leaves room for a
// loaded CI machine without hiding a sync that never happens.
const visibleWithin = 10 * time.Second

// devRun is a running `chaser dev --json`.
type devRun struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	events []api.DevEvent
	stderr *bytes.Buffer
	done   chan struct{}
	ready  api.DevEvent
}

// startDev starts `chaser dev DIR --json ARGS…` and waits for its ready
// event; it is interrupted at the end of the test if still running.
func (s *Server) startDev(t *testing.T, key, dir string, args ...string) *devRun {
	t.Helper()
	return startDevAt(t, s.URL, key, dir, args...)
}

// startDevAt is startDev against the API at url.
func startDevAt(t *testing.T, url, key, dir string, args ...string) *devRun {
	t.Helper()
	d := &devRun{stderr: &bytes.Buffer{}, done: make(chan struct{})}
	d.cmd = exec.Command(binary, append([]string{"dev", dir, "--json"}, args...)...)
	d.cmd.Env = append(os.Environ(), "CHASER_API_URL="+url, "CHASER_API_KEY="+key)
	d.cmd.Stderr = lockedWriter{&d.mu, d.stderr}
	out, err := d.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(d.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var ev api.DevEvent
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				ev = api.DevEvent{Type: "unparsable", Message: sc.Text()}
			}
			d.mu.Lock()
			d.events = append(d.events, ev)
			d.mu.Unlock()
		}
	}()
	t.Cleanup(func() { d.stop(t) })
	d.ready = d.waitEvent(t, 2*time.Minute, func(ev api.DevEvent) bool { return ev.Type == "ready" })
	if first := d.snapshot()[0]; first.Type != "ready" {
		t.Fatalf("first event %+v, want ready", first)
	}
	return d
}

func (d *devRun) snapshot() []api.DevEvent {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]api.DevEvent(nil), d.events...)
}

// waitEvent waits for an event that ok accepts.
func (d *devRun) waitEvent(t *testing.T, within time.Duration, ok func(api.DevEvent) bool) api.DevEvent {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		for _, ev := range d.snapshot() {
			if ok(ev) {
				return ev
			}
		}
		select {
		case <-d.done:
			d.cmd.Wait()
			t.Fatalf("chaser dev ended (%v); events %+v; stderr %s", d.cmd.ProcessState, d.snapshot(), d.stderrText())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no such event within %s; events %+v; stderr %s", within, d.snapshot(), d.stderrText())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (d *devRun) stderrText() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stderr.String()
}

// stop interrupts chaser dev (SIGINT) and returns its exit code.
func (d *devRun) stop(t *testing.T) int {
	if d.cmd.ProcessState != nil {
		return d.cmd.ProcessState.ExitCode()
	}
	d.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-d.done:
	case <-time.After(90 * time.Second):
		d.cmd.Process.Kill()
		t.Errorf("chaser dev did not stop on SIGINT")
	}
	d.cmd.Wait()
	return d.cmd.ProcessState.ExitCode()
}

// eventually runs command in the sandbox until its stdout is want.
func (s *Server) eventually(t *testing.T, key, id, command, want string) time.Duration {
	t.Helper()
	start := time.Now()
	var got string
	for time.Since(start) < visibleWithin {
		res, err := s.Client(key).Exec(t.Context(), id, api.ExecRequest{Command: command})
		if err != nil {
			t.Fatal(err)
		}
		if got = res.Stdout + res.Stderr; got == want {
			return time.Since(start)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: got %q, want %q within %s", command, got, want, visibleWithin)
	return 0
}

func writeFile(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// tree lists /workspace in the sandbox: "path type" lines, sorted.
const tree = `cd /workspace && find . -mindepth 1 -printf '%P %y\n' | LC_ALL=C sort`

func TestDevMirrorsLocalChanges(t *testing.T) {
	s := sharedServer(t)
	key := s.account(t, "free")
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.txt"), "one\n")
	writeFile(t, filepath.Join(dir, "src/main.go"), "package main\n")
	writeFile(t, filepath.Join(dir, ".gitignore"), "*.log\nbuild/\nnode_modules/\n")
	writeFile(t, filepath.Join(dir, "debug.log"), "ignored")
	writeFile(t, filepath.Join(dir, "build/out.o"), "ignored")
	writeFile(t, filepath.Join(dir, ".git/HEAD"), "ref: refs/heads/main\n")
	writeFile(t, filepath.Join(dir, "sub/.gitignore"), "*.gen\n")
	writeFile(t, filepath.Join(dir, "sub/x.gen"), "ignored by a nested .gitignore")
	if err := os.Symlink("a.txt", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(dir, "outside")); err != nil {
		t.Fatal(err)
	}

	d := s.startDev(t, key, dir)
	id := d.ready.SessionID
	if id == "" || d.ready.Root != "/workspace" || d.ready.Uploaded != 8 {
		t.Fatalf("ready %+v", d.ready)
	}
	s.eventually(t, key, id, tree, ".gitignore f\na.txt f\nlink l\noutside l\nsrc d\nsrc/main.go f\nsub d\nsub/.gitignore f\n")
	// Symlinks are symlinks, never followed (outside is not a copy of /etc/passwd).
	s.eventually(t, key, id, "readlink /workspace/link /workspace/outside", "a.txt\n/etc/passwd\n")

	// Dependencies installed in the sandbox are ignored locally: never deleted.
	s.run(t, key, id, "mkdir -p /workspace/node_modules/left-pad && echo x > /workspace/node_modules/left-pad/index.js")

	// Create, edit, chmod.
	writeFile(t, filepath.Join(dir, "new.txt"), "new\n")
	s.eventually(t, key, id, "cat /workspace/new.txt", "new\n")
	writeFile(t, filepath.Join(dir, "a.txt"), "two\n")
	s.eventually(t, key, id, "cat /workspace/a.txt", "two\n")
	os.Chmod(filepath.Join(dir, "new.txt"), 0o755)
	s.eventually(t, key, id, "stat -c %a /workspace/new.txt", "755\n")

	// A sandbox-side edit is overwritten by the next local change.
	s.run(t, key, id, "echo sandbox > /workspace/a.txt")
	writeFile(t, filepath.Join(dir, "a.txt"), "three\n")
	s.eventually(t, key, id, "cat /workspace/a.txt", "three\n")

	// Rename a file, then a directory, then delete a directory.
	os.Rename(filepath.Join(dir, "new.txt"), filepath.Join(dir, "renamed.txt"))
	s.eventually(t, key, id, "cat /workspace/renamed.txt; test -e /workspace/new.txt || echo gone", "new\ngone\n")
	writeFile(t, filepath.Join(dir, "d1/d2/f"), "deep\n")
	s.eventually(t, key, id, "cat /workspace/d1/d2/f", "deep\n")
	os.Rename(filepath.Join(dir, "d1"), filepath.Join(dir, "d3"))
	s.eventually(t, key, id, "cat /workspace/d3/d2/f; test -e /workspace/d1 || echo gone", "deep\ngone\n")
	// The moved directory is watched under its new name.
	writeFile(t, filepath.Join(dir, "d3/d2/g"), "after move\n")
	s.eventually(t, key, id, "cat /workspace/d3/d2/g", "after move\n")
	os.RemoveAll(filepath.Join(dir, "d3"))
	s.eventually(t, key, id, "test -e /workspace/d3 || echo gone", "gone\n")

	// A new symlink, an ignored file, a file in .git: only the link goes.
	os.Symlink("src", filepath.Join(dir, "srclink"))
	writeFile(t, filepath.Join(dir, "later.log"), "ignored")
	writeFile(t, filepath.Join(dir, ".git/index"), "ignored")
	s.eventually(t, key, id, "readlink /workspace/srclink", "src\n")

	// A burst: 300 files in a new directory tree, like a git checkout.
	for i := 0; i < 300; i++ {
		writeFile(t, filepath.Join(dir, "burst", fmt.Sprintf("d%d", i%10), fmt.Sprintf("f%03d.txt", i)), fmt.Sprintf("%d\n", i))
	}
	s.eventually(t, key, id, "find /workspace/burst -type f | wc -l; cat /workspace/burst/d7/f297.txt", "300\n297\n")

	s.eventually(t, key, id, tree, strings.Join(finalTree(), "\n")+"\n")

	// Every change was reported as one event. An event may trail what the
	// sandbox shows: chaser dev reports a batch once the server answered
	// its upload, and a file caught mid-write goes again in the next batch.
	wanted := []string{"write new.txt", "write a.txt", "delete new.txt", "write renamed.txt", "mkdir d1", "write d1/d2/f", "delete d1", "write d3/d2/f", "delete d3", "symlink srclink", "write burst/d7/f297.txt"}
	seen := map[string]bool{}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		clear(seen)
		for _, ev := range d.snapshot() {
			if ev.Type == "sync" {
				seen[ev.Op+" "+ev.Path] = true
			}
		}
		if !slices.ContainsFunc(wanted, func(w string) bool { return !seen[w] }) || time.Now().After(deadline) {
			break
		}
	}
	for _, ev := range d.snapshot() {
		if ev.Type == "error" {
			t.Errorf("error event %+v", ev)
		}
	}
	for _, want := range wanted {
		if !seen[want] {
			t.Errorf("no sync event %q", want)
		}
	}
	if seen["write later.log"] || seen["write .git/index"] {
		t.Errorf("ignored files were synced: %v", seen)
	}

	if code := d.stop(t); code != 0 {
		t.Fatalf("chaser dev exited %d on SIGINT: %s", code, d.stderrText())
	}
	// The ephemeral sandbox is gone with it.
	if sess, err := s.Client(key).GetSession(t.Context(), id); err != nil || sess.Reason != api.ReasonDeleted {
		t.Fatalf("session after chaser dev: %+v %v", sess, err)
	}
}

// finalTree is the listing of /workspace at the end of
// TestDevMirrorsLocalChanges.
func finalTree() []string {
	out := []string{".gitignore f", "a.txt f", "burst d"}
	for d := 0; d < 10; d++ {
		out = append(out, fmt.Sprintf("burst/d%d d", d))
		for i := d; i < 300; i += 10 {
			out = append(out, fmt.Sprintf("burst/d%d/f%03d.txt f", d, i))
		}
	}
	return append(out, "link l", "node_modules d", "node_modules/left-pad d", "node_modules/left-pad/index.js f",
		"outside l", "renamed.txt f", "src d", "src/main.go f", "srclink l", "sub d", "sub/.gitignore f")
}

func TestDevRestartReconcilesByHash(t *testing.T) {
	s := sharedServer(t)
	key := s.account(t, "free")
	id := s.sandbox(t, key)
	dir := t.TempDir()
	for i := 0; i < 50; i++ {
		writeFile(t, filepath.Join(dir, fmt.Sprintf("pkg/f%02d.txt", i)), strings.Repeat("x", 1000+i))
	}
	writeFile(t, filepath.Join(dir, ".chaserignore"), "node_modules\n")

	d := s.startDev(t, key, dir, "--session", id)
	if d.ready.SessionID != id || d.ready.Uploaded != 52 || d.ready.Bytes != 50*1000+49*50/2+int64(len("node_modules\n")) {
		t.Fatalf("first ready %+v", d.ready)
	}
	if code := d.stop(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
	// --session: the session is not ours to delete.
	if _, err := s.Client(key).GetSession(t.Context(), id); err != nil {
		t.Fatalf("session deleted by chaser dev --session: %v", err)
	}

	// While chaser dev is not running: a local edit, a local delete, a
	// sandbox edit of the same size, a sandbox-only file and ignored
	// dependencies installed in the sandbox.
	writeFile(t, filepath.Join(dir, "pkg/f01.txt"), strings.Repeat("y", 2000))
	os.Remove(filepath.Join(dir, "pkg/f02.txt"))
	s.run(t, key, id, "printf %1003s | tr ' ' z > /workspace/pkg/f03.txt; echo stray > /workspace/stray.txt; mkdir -p /workspace/node_modules/x && echo dep > /workspace/node_modules/x/i.js")

	d = s.startDev(t, key, dir, "--session", id)
	if d.ready.Uploaded != 2 || d.ready.Deleted != 2 || d.ready.Bytes != 2000+1003 {
		t.Fatalf("restart re-sent more than what differs: ready %+v", d.ready)
	}
	s.eventually(t, key, id, "head -c 3 /workspace/pkg/f01.txt; head -c 3 /workspace/pkg/f03.txt; ls /workspace/pkg | wc -l; test -e /workspace/stray.txt || echo gone; cat /workspace/node_modules/x/i.js",
		"yyyxxx49\ngone\ndep\n")
}

func TestDevOverLimitFileIsSkipped(t *testing.T) {
	s := newServer(t, "--max-file-size", "1MB")
	key := s.account(t, "free")
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "big.bin"), strings.Repeat("b", 2<<20))
	writeFile(t, filepath.Join(dir, "small.txt"), "small\n")

	d := s.startDev(t, key, dir)
	id := d.ready.SessionID
	ev := d.waitEvent(t, time.Second, func(ev api.DevEvent) bool { return ev.Type == "error" && ev.Path == "big.bin" })
	if ev.Code != "too_large" || !strings.Contains(ev.Message, "1 MiB") {
		t.Fatalf("error event %+v", ev)
	}
	if d.ready.Uploaded != 1 {
		t.Fatalf("ready %+v", d.ready)
	}
	s.eventually(t, key, id, "ls /workspace", "small.txt\n")

	// While watching too: the big one is reported, the rest goes on.
	writeFile(t, filepath.Join(dir, "big2.bin"), strings.Repeat("c", 3<<20))
	writeFile(t, filepath.Join(dir, "after.txt"), "after\n")
	d.waitEvent(t, visibleWithin, func(ev api.DevEvent) bool {
		return ev.Type == "error" && ev.Path == "big2.bin" && ev.Code == "too_large"
	})
	s.eventually(t, key, id, "ls /workspace", "after.txt\nsmall.txt\n")
	// A file just under the limit streams through.
	writeFile(t, filepath.Join(dir, "edge.bin"), strings.Repeat("e", 1<<20))
	s.eventually(t, key, id, "wc -c < /workspace/edge.bin", "1048576\n")
}

func TestDevCommand(t *testing.T) {
	s := sharedServer(t)
	key := s.account(t, "free")
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "app.sh"), "echo from app\n")
	res := s.cli(t, key, nil, "dev", dir, "-c", "pwd; sh app.sh; exit 7")
	if res.Code != 7 || res.Stdout != "/workspace\nfrom app\n" {
		t.Fatalf("chaser dev -c: %+v", res)
	}
	// The ephemeral sandbox is destroyed at exit.
	list, err := s.Client(key).ListSessions(t.Context())
	if err != nil || len(list) != 0 {
		t.Fatalf("sessions left: %+v %v", list, err)
	}

	// A paid account without a target mirrors into its default workspace,
	// whose session stays (with the files) after chaser dev ends.
	paid := s.account(t, "paid")
	res = s.cli(t, paid, nil, "dev", dir, "-c", "cat app.sh")
	if res.Code != 0 || res.Stdout != "echo from app\n" {
		t.Fatalf("paid chaser dev -c: %+v", res)
	}
	list, err = s.Client(paid).ListSessions(t.Context())
	if err != nil || len(list) != 1 || list[0].Ephemeral || list[0].WorkspaceID == nil {
		t.Fatalf("paid sessions after chaser dev: %+v %v", list, err)
	}
	t.Cleanup(func() { s.Client(paid).DeleteSession(context.Background(), list[0].ID) })
	if got := s.run(t, paid, list[0].ID, "cat /workspace/app.sh"); got != "echo from app\n" {
		t.Fatalf("workspace after chaser dev: %q", got)
	}

	// An empty DIR into a sandbox without /workspace: it is made, and the
	// command runs in it.
	id := s.sandbox(t, key)
	s.run(t, key, id, "rm -rf /workspace")
	res = s.cli(t, key, nil, "dev", t.TempDir(), "--session", id, "-c", "pwd; ls -A | wc -l")
	if res.Code != 0 || res.Stdout != "/workspace\n0\n" {
		t.Fatalf("chaser dev -c with an empty DIR: %+v", res)
	}
}

func TestDevBadInput(t *testing.T) {
	s := sharedServer(t)
	key := s.account(t, "free")
	file := filepath.Join(t.TempDir(), "file")
	writeFile(t, file, "x")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"dev", "/nonexistent/dir", "-c", "true"}, "does not exist"},
		{[]string{"dev", file, "-c", "true"}, "is not a directory"},
		{[]string{"dev", t.TempDir(), "--session", "s-x", "--ephemeral", "-c", "true"}, "at most one of"},
		{[]string{"dev", t.TempDir(), "--session", "s-nosuchsession", "-c", "true"}, "not found"},
	} {
		res := s.cli(t, key, nil, tc.args...)
		if res.Code != 1 || !strings.Contains(res.Stderr, tc.want) {
			t.Errorf("chaser %v: %+v, want exit 1 and %q", tc.args, res, tc.want)
		}
	}
	list, _ := s.Client(key).ListSessions(context.Background())
	if len(list) != 0 {
		t.Fatalf("bad input created sessions: %+v", list)
	}
}

// flakyProxy forwards TCP connections to target until it is cut: then it
// drops every connection, open or new, like a network outage.
type flakyProxy struct {
	l      net.Listener
	target string
	mu     sync.Mutex
	down   bool
	conns  []net.Conn
}

func newFlakyProxy(t *testing.T, target string) *flakyProxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &flakyProxy{l: l, target: target}
	t.Cleanup(func() { l.Close(); p.cut(true) })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			if p.down {
				p.mu.Unlock()
				c.Close()
				continue
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				p.mu.Unlock()
				c.Close()
				continue
			}
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { io.Copy(up, c); up.Close() }()
			go func() { io.Copy(c, up); c.Close() }()
		}
	}()
	return p
}

func (p *flakyProxy) url() string { return "http://" + p.l.Addr().String() }

// cut drops every connection and refuses new ones (down) or lets them
// through again.
func (p *flakyProxy) cut(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	if down {
		for _, c := range p.conns {
			c.Close()
		}
		p.conns = nil
	}
}

func TestDevRetriesAndReconcilesAfterOutage(t *testing.T) {
	s := sharedServer(t)
	key := s.account(t, "free")
	id := s.sandbox(t, key)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.txt"), "a\n")
	writeFile(t, filepath.Join(dir, "b.txt"), "b\n")
	p := newFlakyProxy(t, s.Addr)
	d := startDevAt(t, p.url(), key, dir, "--session", id)
	s.eventually(t, key, id, "cat /workspace/a.txt", "a\n")

	p.cut(true)
	writeFile(t, filepath.Join(dir, "a.txt"), "changed during the outage\n")
	os.Remove(filepath.Join(dir, "b.txt"))
	d.waitEvent(t, visibleWithin, func(ev api.DevEvent) bool { return ev.Type == "error" && ev.Code == "sync_failed" })
	// Meanwhile the sandbox changes too: the reconcile after the outage
	// makes it match the local tree again.
	s.run(t, key, id, "echo stray > /workspace/stray.txt")
	p.cut(false)
	ev := d.waitEvent(t, 30*time.Second, func(ev api.DevEvent) bool { return ev.Type == "reconcile" })
	if ev.Uploaded != 1 || ev.Deleted != 2 {
		t.Fatalf("reconcile %+v: want a.txt sent, b.txt and stray.txt deleted", ev)
	}
	s.eventually(t, key, id, "ls /workspace; cat /workspace/a.txt", "a.txt\nchanged during the outage\n")
	// And it keeps syncing.
	writeFile(t, filepath.Join(dir, "c.txt"), "c\n")
	s.eventually(t, key, id, "cat /workspace/c.txt", "c\n")
	if code := d.stop(t); code != 0 {
		t.Fatalf("exit %d: %s", code, d.stderrText())
	}
}

// The sync endpoints resolve every entry beneath the root inside the
// sandbox: a symlink to the sandbox's / does not lead out of /workspace.
func TestSyncAPI(t *testing.T) {
	s := sharedServer(t)
	key := s.account(t, "free")
	id := s.sandbox(t, key)
	s.run(t, key, id, "ln -s / /workspace/rootlink && ln -s ../tmp /workspace/tmplink")
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(name, body string, typ byte, link string) {
		h := &tar.Header{Name: name, Typeflag: typ, Mode: 0o644, Linkname: link}
		if typ == tar.TypeReg {
			h.Size = int64(len(body))
		}
		tw.WriteHeader(h)
		tw.Write([]byte(body))
	}
	add("app/", "", tar.TypeDir, "")
	add("app/main.js", "console.log(1)\n", tar.TypeReg, "")
	add("../evil", "x", tar.TypeReg, "")
	add("/evil", "x", tar.TypeReg, "")
	add("rootlink/tmp/evil", "x", tar.TypeReg, "")
	add("tmplink/evil", "x", tar.TypeReg, "")
	add("app/link", "", tar.TypeSymlink, "/etc/passwd")
	tw.Close()
	status, _, out := s.send(t, key, "POST", sessPath(id, "/files/archive?path=/workspace"), "application/x-tar", &buf)
	if status != 200 {
		t.Fatalf("archive: %d %s", status, out)
	}
	var res api.ArchiveResult
	decodeJSON(t, out, &res)
	if len(res.Written) != 3 || len(res.Errors) != 4 {
		t.Fatalf("archive answer %s", out)
	}
	for _, e := range res.Errors {
		if e.Code != "invalid_argument" {
			t.Errorf("error %+v", e)
		}
	}
	if got := s.run(t, key, id, "ls /tmp /evil 2>&1; cat /workspace/app/main.js; readlink /workspace/app/link"); strings.Contains(got, "evil\n") || !strings.HasSuffix(got, "console.log(1)\n/etc/passwd\n") {
		t.Fatalf("in the sandbox: %q", got)
	}

	status, _, out = s.send(t, key, "GET", sessPath(id, "/files/manifest?path=/workspace"), "", nil)
	var m api.Manifest
	decodeJSON(t, out, &m)
	if status != 200 || !m.Exists || m.MaxFileSize != limit16 || len(m.Entries) != 5 || m.Entries[2].Path != "app/main.js" || m.Entries[2].SHA256 != sha([]byte("console.log(1)\n")) {
		t.Fatalf("manifest: %d %s", status, out)
	}
	status, _, out = s.send(t, key, "GET", sessPath(id, "/files/manifest?path=/nonexistent"), "", nil)
	decodeJSON(t, out, &m)
	if status != 200 || m.Exists || len(m.Entries) != 0 {
		t.Fatalf("manifest of a missing root: %d %s", status, out)
	}
	status, _, out = s.send(t, key, "POST", sessPath(id, "/files/hashes?path=/workspace"), "application/json", strings.NewReader(`{"paths":["app/main.js","rootlink/etc/hostname"]}`))
	var h api.Hashes
	decodeJSON(t, out, &h)
	if status != 200 || len(h.Hashes) != 1 {
		t.Fatalf("hashes: %d %s", status, out)
	}

	status, _, out = s.send(t, key, "POST", sessPath(id, "/files/prune?path=/workspace"), "application/json", strings.NewReader(`{"paths":["app","rootlink/etc/hostname","../x"]}`))
	var pr api.PruneResult
	decodeJSON(t, out, &pr)
	if status != 200 || strings.Join(pr.Removed, ",") != "app" || len(pr.Errors) != 2 {
		t.Fatalf("prune: %d %s", status, out)
	}
	if got := s.run(t, key, id, "ls /workspace; cat /etc/hostname >/dev/null && echo kept"); got != "rootlink\ntmplink\nkept\n" {
		t.Fatalf("after prune: %q", got)
	}
	// Another account sees nothing.
	other := s.account(t, "free")
	status, _, out = s.send(t, other, "GET", sessPath(id, "/files/manifest?path=/workspace"), "", nil)
	expectError(t, status, out, 404, "not_found")
}

// Editing an ignore file reconciles: newly included files are sent,
// newly ignored ones stay in the sandbox (never deleted) and are no
// longer synced.
func TestDevIgnoreRulesChange(t *testing.T) {
	s := sharedServer(t)
	key := s.account(t, "free")
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, ".gitignore"), "secret.txt\n")
	writeFile(t, filepath.Join(dir, "secret.txt"), "s\n")
	writeFile(t, filepath.Join(dir, "a.txt"), "a\n")
	d := s.startDev(t, key, dir)
	id := d.ready.SessionID
	s.eventually(t, key, id, "ls -A /workspace", ".gitignore\na.txt\n")

	writeFile(t, filepath.Join(dir, ".gitignore"), "a.txt\n")
	d.waitEvent(t, visibleWithin, func(ev api.DevEvent) bool { return ev.Type == "reconcile" })
	s.eventually(t, key, id, "ls -A /workspace; cat /workspace/secret.txt", ".gitignore\na.txt\nsecret.txt\ns\n")
	writeFile(t, filepath.Join(dir, "a.txt"), "changed, but ignored now\n")
	writeFile(t, filepath.Join(dir, "b.txt"), "b\n")
	s.eventually(t, key, id, "cat /workspace/b.txt /workspace/a.txt", "b\na\n")
}

// TestDevInteractiveInTmux uses chaser dev as a person does: a shell in
// /workspace on the local terminal while local edits show up in it.
func TestDevInteractiveInTmux(t *testing.T) {
	s := sharedServer(t)
	key := s.account(t, "free")
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "src", "a.txt"), "v1\n")
	env := "CHASER_API_URL=" + s.URL + " CHASER_API_KEY=" + key
	tm := newTmux(t, 100, 30, "cd "+dir+" && env "+env+" "+binary+" dev; echo CLI-EXIT=$?; sleep 600")
	tm.waitFor("/workspace#")
	tm.send("cat src/a.txt; pwd", "Enter")
	tm.waitFor("v1\n/workspace")
	writeFile(t, filepath.Join(dir, "src", "a.txt"), "v2\n")
	writeFile(t, filepath.Join(dir, "new.txt"), "fresh\n")
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(tm.screen(), "fresh-v2") {
		if time.Now().After(deadline) {
			t.Fatalf("local edits never showed in the shell:\n%s", tm.screen())
		}
		tm.send("clear; echo $(cat new.txt)-$(cat src/a.txt)", "Enter")
		time.Sleep(300 * time.Millisecond)
	}
	tm.send("exit 3", "Enter")
	tm.waitFor("CLI-EXIT=3")
	// Free tier: the sandbox was ephemeral and is gone with the shell.
	if list, err := s.Client(key).ListSessions(t.Context()); err != nil || len(list) != 0 {
		t.Fatalf("sessions after chaser dev: %+v %v", list, err)
	}
}
