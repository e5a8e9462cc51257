package integration

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chaserhq/chaser/api"
)

// limit16 is the seed's limit, the server's default.
const limit16 = 16 << 20

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// run runs a shell command in session id and returns its stdout; a
// non-zero exit fails the test.
func (s *Server) run(t *testing.T, key, id, command string) string {
	t.Helper()
	res, err := s.Client(key).Exec(t.Context(), id, api.ExecRequest{Command: command})
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 0 {
		t.Fatalf("%s: exit %d: %s", command, res.ExitCode, res.Stderr)
	}
	return res.Stdout
}

// send sends an API request with key (none when empty), a body and a
// content type, and returns status, headers and body.
func (s *Server) send(t *testing.T, key, method, path, contentType string, body io.Reader) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, s.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

type field struct{ name, value string }

// multipartBody builds a form like curl -F: the fields in order, and the
// file part (when file is not nil) where fileAt says (-1: last).
func multipartBody(t *testing.T, fields []field, file []byte, fileAt int) (string, []byte) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	addFile := func() {
		w, err := mw.CreateFormFile("file", "upload.bin")
		if err != nil {
			t.Fatal(err)
		}
		w.Write(file)
	}
	for i, f := range fields {
		if file != nil && i == fileAt {
			addFile()
		}
		mw.WriteField(f.name, f.value)
	}
	if file != nil && (fileAt < 0 || fileAt >= len(fields)) {
		addFile()
	}
	mw.Close()
	return mw.FormDataContentType(), buf.Bytes()
}

func sessPath(id, rest string) string { return "/v1/sessions/" + id + rest }

func q(p string) string { return url.QueryEscape(p) }

// curl runs curl with args and returns its stdout.
func curl(t *testing.T, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatal("curl is needed to run the seed's commands verbatim: apt-get install -y curl")
	}
	out, err := exec.CommandContext(t.Context(), "curl", append([]string{"-sS"}, args...)...).Output()
	if err != nil {
		t.Fatalf("curl %v: %v", args, err)
	}
	return string(out)
}

func TestFilesSeedCurl(t *testing.T) {
	s := sharedServer(t)
	key := s.account(t, "free")
	id := s.sandbox(t, key)
	dir := t.TempDir()
	content := []byte("console.log('hello from chaser')\n")
	local := filepath.Join(dir, "app.js")
	os.WriteFile(local, content, 0o644)

	// The seed's upload, verbatim.
	out := curl(t, s.URL+"/v1/sessions/"+id+"/upload",
		"-H", "Authorization: Bearer "+key,
		"-F", "path=/workspace/app.js",
		"-F", "file=@"+local)
	var info api.FileInfo
	decodeJSON(t, []byte(out), &info)
	if info.Path != "/workspace/app.js" || info.Size != int64(len(content)) || info.SHA256 != sha(content) || info.Type != api.FileTypeFile {
		t.Fatalf("upload answer %s", out)
	}
	if got := s.run(t, key, id, "cat /workspace/app.js"); got != string(content) {
		t.Fatalf("in the sandbox: %q", got)
	}

	// The seed's download, verbatim.
	back := filepath.Join(dir, "back.js")
	curl(t, s.URL+"/v1/sessions/"+id+"/download?path=/workspace/app.js",
		"-H", "Authorization: Bearer "+key,
		"--output", back)
	if b, _ := os.ReadFile(back); !bytes.Equal(b, content) {
		t.Fatalf("downloaded %q", b)
	}
}

func TestFilesUploadDownloadRoundTrip(t *testing.T) {
	s := sharedServer(t)
	key := s.account(t, "free")
	id := s.sandbox(t, key)
	data := randomBytes(t, 3<<20+17)

	// Multipart (built like curl -F) into directories that do not exist.
	ct, body := multipartBody(t, []field{{"path", "/workspace/a/b/c/data.bin"}, {"mode", "0755"}}, data, -1)
	status, _, out := s.send(t, key, "POST", sessPath(id, "/upload"), ct, bytes.NewReader(body))
	if status != 200 {
		t.Fatalf("multipart upload: %d %s", status, out)
	}
	var info api.FileInfo
	decodeJSON(t, out, &info)
	if info.SHA256 != sha(data) || info.Mode != "0755" || info.Size != int64(len(data)) {
		t.Fatalf("answer %s", out)
	}
	if got := s.run(t, key, id, "sha256sum /workspace/a/b/c/data.bin; stat -c %a /workspace/a/b/c/data.bin"); got != sha(data)+"  /workspace/a/b/c/data.bin\n755\n" {
		t.Fatalf("in the sandbox: %q", got)
	}

	// Raw body, replacing the file: the mode of the file replaced stays.
	data2 := randomBytes(t, 1<<20)
	status, _, out = s.send(t, key, "POST", sessPath(id, "/upload?path=/workspace/a/b/c/data.bin"), "application/octet-stream", bytes.NewReader(data2))
	if status != 200 {
		t.Fatalf("raw upload: %d %s", status, out)
	}
	decodeJSON(t, out, &info)
	if info.SHA256 != sha(data2) || info.Mode != "0755" {
		t.Fatalf("raw answer %s", out)
	}

	// Download: streamed with Content-Length and a type.
	resp, err := s.Client(key).Download(t.Context(), id, "/workspace/a/b/c/data.bin")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || !bytes.Equal(got, data2) {
		t.Fatalf("download: %d bytes, %v", len(got), err)
	}
	if resp.ContentLength != int64(len(data2)) || resp.Header.Get("Content-Type") != "application/octet-stream" {
		t.Fatalf("headers %v", resp.Header)
	}

	// Text gets a text type; an empty file is fine both ways.
	s.send(t, key, "POST", sessPath(id, "/upload?path=/workspace/notes.txt"), "application/octet-stream", strings.NewReader("hello"))
	status, h, out := s.send(t, key, "GET", sessPath(id, "/download?path=/workspace/notes.txt"), "", nil)
	if status != 200 || string(out) != "hello" || !strings.HasPrefix(h.Get("Content-Type"), "text/plain") || h.Get("Content-Length") != "5" {
		t.Fatalf("text download: %d %v %q", status, h, out)
	}
	status, _, out = s.send(t, key, "POST", sessPath(id, "/upload?path=/workspace/empty"), "application/octet-stream", http.NoBody)
	if status != 200 {
		t.Fatalf("empty upload: %d %s", status, out)
	}
	status, h, out = s.send(t, key, "GET", sessPath(id, "/download?path=/workspace/empty"), "", nil)
	if status != 200 || len(out) != 0 || h.Get("Content-Length") != "0" {
		t.Fatalf("empty download: %d %v %q", status, h, out)
	}
}

func TestFilesOperations(t *testing.T) {
	s := sharedServer(t)
	key := s.account(t, "free")
	id := s.sandbox(t, key)

	status, _, out := s.send(t, key, "POST", sessPath(id, "/files/mkdir"), "application/json", strings.NewReader(`{"path":"/workspace/p/q","mode":"0700"}`))
	if status != 201 {
		t.Fatalf("mkdir: %d %s", status, out)
	}
	status, _, out = s.send(t, key, "POST", sessPath(id, "/files/mkdir"), "application/json", strings.NewReader(`{"path":"/workspace/p/q"}`))
	if status != 200 {
		t.Fatalf("mkdir again: %d %s", status, out)
	}
	s.run(t, key, id, "printf 12345 > /workspace/p/q/f && printf 1 > /workspace/p/g && ln -s q /workspace/p/link")

	status, _, out = s.send(t, key, "GET", sessPath(id, "/files?path=/workspace/p"), "", nil)
	var l api.FileList
	decodeJSON(t, out, &l)
	var got []string
	for _, e := range l.Entries {
		got = append(got, e.Name+":"+e.Type+":"+e.Mode)
	}
	if status != 200 || strings.Join(got, ",") != "g:file:0644,link:symlink:0777,q:dir:0700" {
		t.Fatalf("list: %d %v", status, got)
	}
	status, _, out = s.send(t, key, "GET", sessPath(id, "/files?path=/workspace&recursive=true"), "", nil)
	decodeJSON(t, out, &l)
	got = nil
	for _, e := range l.Entries {
		got = append(got, e.Path)
	}
	if status != 200 || strings.Join(got, ",") != "/workspace/p,/workspace/p/g,/workspace/p/link,/workspace/p/q,/workspace/p/q/f" || l.Truncated {
		t.Fatalf("recursive list: %d %v", status, got)
	}

	var info api.FileInfo
	status, _, out = s.send(t, key, "GET", sessPath(id, "/files/stat?path=/workspace/p/link"), "", nil)
	decodeJSON(t, out, &info)
	if status != 200 || info.Type != api.FileTypeSymlink || info.LinkTarget != "q" {
		t.Fatalf("stat link: %d %s", status, out)
	}
	status, _, out = s.send(t, key, "GET", sessPath(id, "/files/stat?path=/workspace/p/q/f"), "", nil)
	decodeJSON(t, out, &info)
	if status != 200 || info.Size != 5 || info.ModTime.IsZero() {
		t.Fatalf("stat file: %d %s", status, out)
	}

	// Move refuses to replace unless told.
	status, _, out = s.send(t, key, "POST", sessPath(id, "/files/move"), "application/json", strings.NewReader(`{"from":"/workspace/p/g","to":"/workspace/p/q/f"}`))
	expectError(t, status, out, 409, "already_exists")
	if got := s.run(t, key, id, "cat /workspace/p/q/f"); got != "12345" {
		t.Fatalf("refused move changed the destination: %q", got)
	}
	status, _, out = s.send(t, key, "POST", sessPath(id, "/files/move"), "application/json", strings.NewReader(`{"from":"/workspace/p/g","to":"/workspace/p/q/f","overwrite":true}`))
	if status != 200 {
		t.Fatalf("move overwrite: %d %s", status, out)
	}
	status, _, out = s.send(t, key, "POST", sessPath(id, "/files/move"), "application/json", strings.NewReader(`{"from":"/workspace/p","to":"/workspace/moved"}`))
	if status != 200 {
		t.Fatalf("move dir: %d %s", status, out)
	}
	if got := s.run(t, key, id, "cat /workspace/moved/q/f; ls /workspace"); got != "1moved\n" {
		t.Fatalf("after moves: %q", got)
	}

	// Remove: a non-empty directory needs recursive.
	status, _, out = s.send(t, key, "DELETE", sessPath(id, "/files?path=/workspace/moved"), "", nil)
	expectError(t, status, out, 409, "failed_precondition")
	status, _, out = s.send(t, key, "DELETE", sessPath(id, "/files?path=/workspace/moved/q/f"), "", nil)
	if status != 204 {
		t.Fatalf("remove file: %d %s", status, out)
	}
	status, _, out = s.send(t, key, "DELETE", sessPath(id, "/files?path=/workspace/moved&recursive=true"), "", nil)
	if status != 204 {
		t.Fatalf("remove dir: %d %s", status, out)
	}
	status, _, out = s.send(t, key, "GET", sessPath(id, "/files/stat?path=/workspace/moved"), "", nil)
	expectError(t, status, out, 404, "not_found")
}

func TestFilesCLI(t *testing.T) {
	s := sharedServer(t)
	key := s.account(t, "free")
	id := s.sandbox(t, key)
	dir := t.TempDir()
	data := randomBytes(t, 2<<20)
	local := filepath.Join(dir, "data.bin")
	os.WriteFile(local, data, 0o755)

	r := s.cli(t, key, nil, "upload", id, local, "/workspace/")
	if r.Code != 0 || !strings.Contains(r.Stdout, "/workspace/data.bin") || r.Stderr != "" {
		t.Fatalf("upload: %+v", r)
	}
	// Into an existing directory, keeping the name, under --json.
	s.run(t, key, id, "mkdir -p /workspace/d")
	r = s.cli(t, key, nil, "upload", "--json", id, local, "/workspace/d")
	var info api.FileInfo
	decodeJSON(t, []byte(r.Stdout), &info)
	if r.Code != 0 || info.Path != "/workspace/d/data.bin" || info.SHA256 != sha(data) || r.Stderr != "" {
		t.Fatalf("upload --json: %+v", r)
	}
	// Standard input, with a mode.
	r = s.cli(t, key, bytes.NewReader([]byte("#!/bin/sh\necho hi\n")), "upload", "--mode", "0755", id, "-", "/workspace/bin/hi")
	if r.Code != 0 {
		t.Fatalf("upload -: %+v", r)
	}
	if got := s.run(t, key, id, "/workspace/bin/hi"); got != "hi\n" {
		t.Fatalf("uploaded script: %q", got)
	}

	// Download to a file, to a directory, and to standard output.
	r = s.cli(t, key, nil, "download", id, "/workspace/data.bin", filepath.Join(dir, "back.bin"))
	if b, _ := os.ReadFile(filepath.Join(dir, "back.bin")); r.Code != 0 || !bytes.Equal(b, data) {
		t.Fatalf("download: %+v", r)
	}
	os.Mkdir(filepath.Join(dir, "into"), 0o755)
	r = s.cli(t, key, nil, "download", "--json", id, "/workspace/bin/hi", filepath.Join(dir, "into"))
	if fi, err := os.Stat(filepath.Join(dir, "into", "hi")); r.Code != 0 || err != nil || fi.Mode().Perm() != 0o755 || r.Stderr != "" {
		t.Fatalf("download into dir: %+v %v", r, err)
	}
	r = s.cli(t, key, nil, "download", id, "/workspace/data.bin", "-")
	if r.Code != 0 || r.Stdout != string(data) || r.Stderr != "" {
		t.Fatalf("download -: code %d, %d bytes, stderr %q", r.Code, len(r.Stdout), r.Stderr)
	}

	// Errors say what went wrong; nothing is written locally.
	r = s.cli(t, key, nil, "download", id, "/workspace/missing", filepath.Join(dir, "missing"))
	if r.Code != 1 || !strings.Contains(r.Stderr, "/workspace/missing") || strings.Contains(r.Stderr, "sessions list") {
		t.Fatalf("missing: %+v", r)
	}
	if _, err := os.Stat(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("a failed download left a file")
	}
	r = s.cli(t, key, nil, "upload", id, local, "workspace/x")
	if r.Code != 1 || !strings.Contains(r.Stderr, "absolute") {
		t.Fatalf("relative: %+v", r)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 3 {
		t.Fatalf("local dir: %v", ents)
	}
}

// lsA lists dir in the sandbox, hidden files included.
func (s *Server) lsA(t *testing.T, key, id, dir string) string {
	t.Helper()
	return strings.TrimSpace(s.run(t, key, id, "ls -A "+dir))
}

func TestFilesOverLimitKeepsOldFile(t *testing.T) {
	s := sharedServer(t)
	key := s.account(t, "free")
	id := s.sandbox(t, key)
	s.run(t, key, id, "printf old > /workspace/keep.txt")
	// Over limit+slack: refused from Content-Length alone.
	big := randomBytes(t, limit16+100<<10)

	check := func(t *testing.T) {
		t.Helper()
		if got := s.run(t, key, id, "cat /workspace/keep.txt"); got != "old" {
			t.Fatalf("old file damaged: %q", got)
		}
		if got := s.lsA(t, key, id, "/workspace"); got != "keep.txt" {
			t.Fatalf("left behind in /workspace: %q", got)
		}
	}
	t.Run("multipart", func(t *testing.T) {
		ct, body := multipartBody(t, []field{{"path", "/workspace/keep.txt"}}, big, -1)
		status, _, out := s.send(t, key, "POST", sessPath(id, "/upload"), ct, bytes.NewReader(body))
		expectError(t, status, out, 413, "too_large")
		check(t)
	})
	t.Run("multipart within the slack", func(t *testing.T) {
		// The body is under limit+slack, so it is read: the stream is cut.
		ct, body := multipartBody(t, []field{{"path", "/workspace/keep.txt"}}, big[:limit16+1], -1)
		status, _, out := s.send(t, key, "POST", sessPath(id, "/upload"), ct, bytes.NewReader(body))
		expectError(t, status, out, 413, "too_large")
		check(t)
	})
	t.Run("raw, length unknown", func(t *testing.T) {
		status, _, out := s.send(t, key, "POST", sessPath(id, "/upload?path=/workspace/keep.txt"), "application/octet-stream", io.MultiReader(bytes.NewReader(big)))
		expectError(t, status, out, 413, "too_large")
		check(t)
	})
	t.Run("raw into new directories", func(t *testing.T) {
		status, _, out := s.send(t, key, "POST", sessPath(id, "/upload?path=/workspace/new/dir/f"), "application/octet-stream", io.MultiReader(bytes.NewReader(big)))
		expectError(t, status, out, 413, "too_large")
		check(t)
	})
	t.Run("cli from stdin", func(t *testing.T) {
		r := s.cli(t, key, bytes.NewReader(big), "upload", id, "-", "/workspace/keep.txt")
		if r.Code != 1 || !strings.Contains(r.Stderr, "larger than the 16 MiB limit") {
			t.Fatalf("%+v", r)
		}
		check(t)
	})
	t.Run("download", func(t *testing.T) {
		s.run(t, key, id, fmt.Sprintf("head -c %d /dev/zero > /tmp/big", limit16+1))
		status, _, out := s.send(t, key, "GET", sessPath(id, "/download?path=/tmp/big"), "", nil)
		expectError(t, status, out, 413, "too_large")
	})
}

func TestFilesLimitIsConfigurable(t *testing.T) {
	s := newServer(t, "--max-file-size", "1MB")
	key := s.account(t, "free")
	id := s.sandbox(t, key)
	status, _, out := s.send(t, key, "POST", sessPath(id, "/upload?path=/workspace/ok"), "application/octet-stream", bytes.NewReader(randomBytes(t, 1<<20)))
	if status != 200 {
		t.Fatalf("exactly the limit: %d %s", status, out)
	}
	status, _, out = s.send(t, key, "POST", sessPath(id, "/upload?path=/workspace/ok"), "application/octet-stream", bytes.NewReader(randomBytes(t, 1<<20+1)))
	expectError(t, status, out, 413, "too_large")
	if !strings.Contains(string(out), "1 MiB") {
		t.Fatalf("message does not name the limit: %s", out)
	}
	s.run(t, key, id, "head -c 2000000 /dev/zero > /tmp/two")
	status, _, out = s.send(t, key, "GET", sessPath(id, "/download?path=/tmp/two"), "", nil)
	expectError(t, status, out, 413, "too_large")
}

// interrupt sends the start of a request on a raw connection and closes
// it midway, like a client that crashed.
func interrupt(t *testing.T, s *Server, key, path, contentType string, length int, body []byte) {
	t.Helper()
	c, err := net.Dial("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n", path, s.Addr, key, contentType, length)
	c.Write(body)
	time.Sleep(300 * time.Millisecond)
	c.Close()
}

func TestFilesInterruptedUpload(t *testing.T) {
	s := sharedServer(t)
	key := s.account(t, "free")
	id := s.sandbox(t, key)
	s.run(t, key, id, "printf old > /workspace/keep.txt")
	data := randomBytes(t, 4<<20)

	// Half of a raw body, over an existing file and into a new directory.
	interrupt(t, s, key, sessPath(id, "/upload?path=/workspace/keep.txt"), "application/octet-stream", len(data), data[:len(data)/2])
	interrupt(t, s, key, sessPath(id, "/upload?path=/workspace/sub/new.bin"), "application/octet-stream", len(data), data[:len(data)/2])
	// A whole file part, but the form never ends.
	ct, body := multipartBody(t, []field{{"path", "/workspace/keep.txt"}}, data, -1)
	cut := bytes.LastIndex(body, []byte("\r\n--"))
	interrupt(t, s, key, sessPath(id, "/upload"), ct, len(body), body[:cut+2])

	// Control: the same raw connection with the whole body succeeds, so
	// the cases above failed because they were cut, not for another reason.
	interrupt(t, s, key, sessPath(id, "/upload?path=/workspace/control.bin"), "application/octet-stream", len(data), data)

	deadline := time.Now().Add(10 * time.Second)
	for {
		got := s.lsA(t, key, id, "/workspace")
		old := s.run(t, key, id, "cat /workspace/keep.txt")
		if got == "control.bin\nkeep.txt" && old == "old" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after interrupted uploads: /workspace holds %q, keep.txt %q", got, old)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestFilesSymlinkTricks(t *testing.T) {
	s := sharedServer(t)
	key := s.account(t, "free")
	id := s.sandbox(t, key)
	s.run(t, key, id, "ln -s /proc/1/root /tmp/r && ln -s /proc/1/fd /tmp/fds && ln -s /proc/self/root /tmp/self && ln -s /.chaser /tmp/ch && ln -s / /tmp/slash")
	agentSum := s.run(t, key, id, "sha256sum /.chaser/agent")
	hostsBefore := s.run(t, key, id, "cat /etc/hosts")
	name := fmt.Sprintf("chaser-escape-%d", time.Now().UnixNano())

	for _, tc := range []struct {
		what, method, path string
		status             int
		code               string
	}{
		{"download through the agent's root", "GET", "/download?path=/tmp/r/etc/hostname", 400, "invalid_argument"},
		{"download through the agent's fds", "GET", "/download?path=/tmp/fds/1", 400, "invalid_argument"},
		{"download through /proc/self/root", "GET", "/download?path=/tmp/self/etc/passwd", 400, "invalid_argument"},
		{"list through the agent's root", "GET", "/files?path=/tmp/r", 400, "invalid_argument"},
		{"upload through the agent's root", "POST", "/upload?path=/tmp/r/tmp/" + name, 400, "invalid_argument"},
		{"upload over the agent", "POST", "/upload?path=/.chaser/agent", 403, "permission_denied"},
		{"upload over the agent through a symlink", "POST", "/upload?path=/tmp/ch/agent", 403, "permission_denied"},
		{"remove the agent through a symlink", "DELETE", "/files?path=/tmp/ch/agent", 403, "permission_denied"},
		{"upload over a bind-mounted file", "POST", "/upload?path=/etc/hosts", 403, "permission_denied"},
		{"dotdot", "GET", "/download?path=/workspace/../etc/passwd", 400, "invalid_argument"},
		{"encoded dotdot", "GET", "/download?path=%2Fworkspace%2F%2E%2E%2Fetc%2Fpasswd", 400, "invalid_argument"},
		{"relative", "GET", "/download?path=etc/passwd", 400, "invalid_argument"},
		{"relative upload", "POST", "/upload?path=tmp/x", 400, "invalid_argument"},
	} {
		t.Run(tc.what, func(t *testing.T) {
			status, _, out := s.send(t, key, tc.method, sessPath(id, tc.path), "application/octet-stream", strings.NewReader("pwned"))
			expectError(t, status, out, tc.status, tc.code)
		})
	}
	if got := s.run(t, key, id, "sha256sum /.chaser/agent"); got != agentSum {
		t.Fatalf("agent binary changed: %q", got)
	}
	if got := s.run(t, key, id, "cat /etc/hosts"); got != hostsBefore {
		t.Fatalf("/etc/hosts changed: %q", got)
	}
	if got := s.run(t, key, id, "ls -A /.chaser /etc | grep chaser-upload || true"); got != "" {
		t.Fatalf("temporary files left: %q", got)
	}
	// An ordinary symlink to / stays inside the sandbox.
	status, _, out := s.send(t, key, "POST", sessPath(id, "/upload?path=/tmp/slash/tmp/"+name), "application/octet-stream", strings.NewReader("inside"))
	if status != 200 {
		t.Fatalf("upload through /tmp/slash: %d %s", status, out)
	}
	if got := s.run(t, key, id, "cat /tmp/"+name); got != "inside" {
		t.Fatalf("in the sandbox: %q", got)
	}
	if _, err := os.Stat("/tmp/" + name); err == nil {
		t.Fatalf("/tmp/%s appeared on the host", name)
	}
}

func TestFilesBadInput(t *testing.T) {
	s := sharedServer(t)
	key := s.account(t, "free")
	other := s.account(t, "free")
	id := s.sandbox(t, key)
	s.run(t, key, id, "printf keep > /workspace/keep.txt")
	before := s.run(t, key, id, "ls -lAR /workspace")

	mp := func(fields []field, file []byte, fileAt int) (string, string) {
		ct, body := multipartBody(t, fields, file, fileAt)
		return ct, string(body)
	}
	okCT, okBody := mp([]field{{"path", "/workspace/new.txt"}}, []byte("x"), -1)
	noPathCT, noPathBody := mp(nil, []byte("x"), -1)
	noFileCT, noFileBody := mp([]field{{"path", "/workspace/new.txt"}}, nil, -1)
	fileFirstCT, fileFirstBody := mp([]field{{"path", "/workspace/new.txt"}}, []byte("x"), 0)
	afterCT, afterBody := mp([]field{{"path", "/workspace/new.txt"}, {"mode", "0600"}}, []byte("x"), 1)
	unknownCT, unknownBody := mp([]field{{"path", "/workspace/new.txt"}, {"colour", "red"}}, []byte("x"), -1)
	dirCT, dirBody := mp([]field{{"path", "/workspace"}}, []byte("x"), -1)
	modeCT, modeBody := mp([]field{{"path", "/workspace/new.txt"}, {"mode", "rwx"}}, []byte("x"), -1)
	emptyCT, emptyBody := mp([]field{{"path", ""}}, []byte("x"), -1)

	for _, tc := range []struct {
		what, key, method, path, ct, body string
		status                            int
		code                              string
	}{
		{"upload without key", "", "POST", "/upload", okCT, okBody, 401, "unauthenticated"},
		{"download without key", "", "GET", "/download?path=/workspace/keep.txt", "", "", 401, "unauthenticated"},
		{"list without key", "", "GET", "/files?path=/workspace", "", "", 401, "unauthenticated"},
		{"upload to another account's session", other, "POST", "/upload", okCT, okBody, 404, "not_found"},
		{"download from another account's session", other, "GET", "/download?path=/workspace/keep.txt", "", "", 404, "not_found"},
		{"list another account's session", other, "GET", "/files?path=/workspace", "", "", 404, "not_found"},
		{"remove in another account's session", other, "DELETE", "/files?path=/workspace/keep.txt", "", "", 404, "not_found"},
		{"missing path field", key, "POST", "/upload", noPathCT, noPathBody, 400, "invalid_argument"},
		{"missing file field", key, "POST", "/upload", noFileCT, noFileBody, 400, "invalid_argument"},
		{"file before path", key, "POST", "/upload", fileFirstCT, fileFirstBody, 400, "invalid_argument"},
		{"field after file", key, "POST", "/upload", afterCT, afterBody, 400, "invalid_argument"},
		{"unknown field", key, "POST", "/upload", unknownCT, unknownBody, 400, "invalid_argument"},
		{"empty path field", key, "POST", "/upload", emptyCT, emptyBody, 400, "invalid_argument"},
		{"bad mode", key, "POST", "/upload", modeCT, modeBody, 400, "invalid_argument"},
		{"malformed multipart", key, "POST", "/upload", "multipart/form-data; boundary=x", "garbage", 400, "invalid_argument"},
		{"multipart without boundary", key, "POST", "/upload", "multipart/form-data", okBody, 400, "invalid_argument"},
		{"raw without path", key, "POST", "/upload", "application/octet-stream", "x", 400, "invalid_argument"},
		{"directory as upload target", key, "POST", "/upload", dirCT, dirBody, 400, "invalid_argument"},
		{"directory as download", key, "GET", "/download?path=/workspace", "", "", 400, "invalid_argument"},
		{"file as directory to list", key, "GET", "/files?path=/workspace/keep.txt", "", "", 400, "invalid_argument"},
		{"download of a missing file", key, "GET", "/download?path=/workspace/nope", "", "", 404, "not_found"},
		{"stat of a missing file", key, "GET", "/files/stat?path=/workspace/nope", "", "", 404, "not_found"},
		{"list of a missing directory", key, "GET", "/files?path=/workspace/nope", "", "", 404, "not_found"},
		{"remove of a missing file", key, "DELETE", "/files?path=/workspace/nope", "", "", 404, "not_found"},
		{"download with empty path", key, "GET", "/download?path=", "", "", 400, "invalid_argument"},
		{"download of a device", key, "GET", "/download?path=/dev/zero", "", "", 400, "invalid_argument"},
		{"read-only file system", key, "POST", "/upload?path=/sys/x", "application/octet-stream", "x", 403, "permission_denied"},
		{"read-only sysfs, mkdir", key, "POST", "/files/mkdir", "application/json", `{"path":"/sys/chaser/sub"}`, 403, "permission_denied"},
		{"mkdir over a file", key, "POST", "/files/mkdir", "application/json", `{"path":"/workspace/keep.txt"}`, 409, "already_exists"},
		{"mkdir relative", key, "POST", "/files/mkdir", "application/json", `{"path":"workspace/x"}`, 400, "invalid_argument"},
		{"move without from", key, "POST", "/files/move", "application/json", `{"to":"/workspace/x"}`, 400, "invalid_argument"},
		{"move of a missing file", key, "POST", "/files/move", "application/json", `{"from":"/workspace/nope","to":"/workspace/x"}`, 404, "not_found"},
		{"remove /", key, "DELETE", "/files?path=/&recursive=true", "", "", 400, "invalid_argument"},
		{"upload to a missing session", key, "POST", "/upload", okCT, okBody, 404, "not_found"},
	} {
		t.Run(tc.what, func(t *testing.T) {
			sid := id
			if tc.what == "upload to a missing session" {
				sid = "s-doesnotexist"
			}
			status, _, out := s.send(t, tc.key, tc.method, sessPath(sid, tc.path), tc.ct, strings.NewReader(tc.body))
			expectError(t, status, out, tc.status, tc.code)
		})
	}
	if got := s.run(t, key, id, "ls -lAR /workspace"); got != before {
		t.Fatalf("bad input changed /workspace:\n%s\nwas:\n%s", got, before)
	}
}
