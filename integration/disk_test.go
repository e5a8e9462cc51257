package integration

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/client"
	"github.com/chaserhq/chaser/internal/disk"
	"github.com/chaserhq/chaser/internal/errdefs"
)

// diskMB is the quota the tests of this file give every sandbox.
const diskMB = 64

func newDiskServer(t *testing.T) *Server {
	return newServer(t, "--disk-size", strconv.Itoa(diskMB)+"MiB")
}

// hostFree is the free space of the file system holding dir.
func hostFree(t *testing.T, dir string) int64 {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * int64(st.Bsize)
}

// dfMB is the size in MiB of the file system under path in the sandbox.
func dfMB(t *testing.T, c *client.Client, id, path string) int {
	t.Helper()
	res, err := c.Exec(t.Context(), id, api.ExecRequest{Command: "df -k " + path + " | tail -1 | awk '{print $2}'"})
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("df: %+v %v", res, err)
	}
	kb, err := strconv.Atoi(strings.TrimSpace(res.Stdout))
	if err != nil {
		t.Fatalf("df said %q", res.Stdout)
	}
	return kb >> 10
}

// TestDiskQuota fills a free sandbox's disk: the write fails inside with
// ENOSPC, /tmp counts too, the host's free space stays, an upload beyond
// the quota answers 507 and keeps the old file, and the sandbox stays
// usable once the file is gone.
func TestDiskQuota(t *testing.T) {
	s := newDiskServer(t)
	key := s.account(t, "free")
	c := s.Client(key)
	id := s.sandbox(t, key)

	if mb := dfMB(t, c, id, "/"); mb > diskMB || mb < diskMB/2 {
		t.Fatalf("df / in the sandbox shows %d MiB, want about %d", mb, diskMB)
	}
	if _, err := c.Upload(t.Context(), id, "/workspace/keep", strings.NewReader("old"), 3, client.UploadOptions{}); err != nil {
		t.Fatal(err)
	}

	free := hostFree(t, s.DataDir)
	res, err := c.Exec(t.Context(), id, api.ExecRequest{Command: "dd if=/dev/zero of=/workspace/big bs=1M count=400"})
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode == 0 || !strings.Contains(res.Stderr, "No space left on device") {
		t.Fatalf("dd of 400 MiB into a %d MiB disk: %+v", diskMB, res)
	}
	if drop := free - hostFree(t, s.DataDir); drop > 200<<20 {
		t.Errorf("the host's free space dropped by %d MiB", drop>>20)
	}
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(s.DataDir, "disks", id+".img"), &st); err != nil {
		t.Fatal(err)
	}
	if held := st.Blocks * 512; held > (diskMB+1)<<20 {
		t.Errorf("the sandbox's image holds %d MiB of the host, beyond its %d MiB", held>>20, diskMB)
	}

	// /tmp is in the same writable layer: full too.
	res, err = c.Exec(t.Context(), id, api.ExecRequest{Command: "dd if=/dev/zero of=/tmp/more bs=1M count=8"})
	if err != nil || res.ExitCode == 0 || !strings.Contains(res.Stderr, "No space left on device") {
		t.Fatalf("write to /tmp on a full disk: %+v %v", res, err)
	}

	// An upload beyond the quota: 507, the old file stays.
	body := bytes.Repeat([]byte("x"), 4<<20)
	_, err = c.Upload(t.Context(), id, "/workspace/keep", bytes.NewReader(body), int64(len(body)), client.UploadOptions{})
	if !errors.Is(err, errdefs.ErrInsufficientStorage) {
		t.Fatalf("upload onto a full disk: %v, want insufficient_storage", err)
	}
	resp, err := http.DefaultClient.Do(newUpload(t, s, key, id, "/workspace/keep", body))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	expectError(t, resp.StatusCode, b, 507, "insufficient_storage")
	res, err = c.Exec(t.Context(), id, api.ExecRequest{Command: "cat /workspace/keep; ls -a /workspace | grep -c chaser-upload"})
	if err != nil || res.Stdout != "old0\n" {
		t.Fatalf("after refused uploads: %+v %v, want the old file and no temporary ones", res, err)
	}

	// Still usable once the big file is gone.
	res, err = c.Exec(t.Context(), id, api.ExecRequest{Command: "rm /workspace/big /tmp/more; echo fine > /workspace/after && cat /workspace/after"})
	if err != nil || res.Stdout != "fine\n" {
		t.Fatalf("after freeing space: %+v %v", res, err)
	}
	if _, err := c.Upload(t.Context(), id, "/workspace/keep", bytes.NewReader(body), int64(len(body)), client.UploadOptions{}); err != nil {
		t.Fatalf("upload after freeing space: %v", err)
	}

	if err := c.DeleteSession(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	if left := s.leaks(t, id); len(left) > 0 {
		t.Fatalf("left after delete: %v", left)
	}
}

// newUpload builds a raw upload request, to see the status code itself.
func newUpload(t *testing.T, s *Server, key, id, path string, body []byte) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost,
		s.URL+"/v1/sessions/"+id+"/upload?path="+url.QueryEscape(path), bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/octet-stream")
	return req
}

// TestWorkspaceDisk: a workspace's disk keeps its data across sessions,
// grows with PATCH (the sandbox's df shows it), never shrinks, and stays
// within the tier's maximum.
func TestWorkspaceDisk(t *testing.T) {
	s := newDiskServer(t)
	key := s.account(t, "paid")
	c := s.Client(key)
	w, err := c.CreateWorkspace(t.Context(), api.CreateWorkspaceRequest{Name: "data"})
	if err != nil {
		t.Fatal(err)
	}
	if w.DiskMB != diskMB {
		t.Fatalf("new workspace: disk_mb %d, want %d", w.DiskMB, diskMB)
	}
	sess, _, err := createOn(t, c, "data")
	if err != nil {
		t.Fatal(err)
	}
	if mb := dfMB(t, c, sess, "/workspace"); mb > diskMB || mb < diskMB/2 {
		t.Fatalf("df in the workspace's sandbox shows %d MiB, want about %d", mb, diskMB)
	}
	res, err := c.Exec(t.Context(), sess, api.ExecRequest{Command: "head -c 10485760 /dev/urandom > /workspace/ten && md5sum /workspace/ten"})
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("write: %+v %v", res, err)
	}
	sum := res.Stdout
	if got, _ := c.GetWorkspace(t.Context(), "data"); got.SizeBytes < 10<<20 {
		t.Errorf("workspace with 10 MiB of files: size_bytes %d", got.SizeBytes)
	}

	// Growing while a session runs: online where the server may grow a
	// mounted file system (CAP_SYS_RESOURCE), else 409 and no change.
	code, body := s.do(t, key, "PATCH", "/v1/workspaces/data", `{"disk_mb": 96}`)
	if disk.CanGrowOnline() {
		if code != 200 {
			t.Fatalf("online grow: %d %s", code, body)
		}
		if mb := dfMB(t, c, sess, "/workspace"); mb <= diskMB {
			t.Fatalf("after an online grow to 96 MiB, df shows %d MiB", mb)
		}
	} else {
		expectError(t, code, body, 409, "failed_precondition")
		if got, _ := c.GetWorkspace(t.Context(), "data"); got.DiskMB != diskMB {
			t.Fatalf("refused grow changed disk_mb to %d", got.DiskMB)
		}
	}

	if err := c.DeleteSession(t.Context(), sess); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return len(s.leaks(t, sess)) == 0 && len(loopDevices(t, w.ID)) == 0 })

	for _, bad := range []struct {
		body string
		code int
		cls  string
	}{
		{`{"disk_mb": 32}`, 400, "invalid_argument"},
		{`{}`, 400, "invalid_argument"},
		{`{"disk_mb": "big"}`, 400, "invalid_argument"},
		{`{"disk_mb": 10000000}`, 403, "permission_denied"},
	} {
		code, body := s.do(t, key, "PATCH", "/v1/workspaces/data", bad.body)
		expectError(t, code, body, bad.code, bad.cls)
	}
	if code, body := s.do(t, key, "PATCH", "/v1/workspaces/nope", `{"disk_mb": 128}`); code != 404 {
		t.Fatalf("grow of a missing workspace: %d %s", code, body)
	}
	w, err = c.GrowWorkspace(t.Context(), "data", 112)
	if err != nil || w.DiskMB != 112 {
		t.Fatalf("grow to 112 MiB: %+v %v", w, err)
	}
	if r := s.cli(t, key, nil, "workspaces", "grow", "data", "--disk", "128MiB"); r.Code != 0 || !strings.Contains(r.Stdout, "128 MiB") {
		t.Fatalf("chaser workspaces grow: %+v", r)
	}

	sess, _, err = createOn(t, c, "data")
	if err != nil {
		t.Fatal(err)
	}
	if mb := dfMB(t, c, sess, "/workspace"); mb <= diskMB || mb > 128 {
		t.Fatalf("after growing to 128 MiB, df in a new session shows %d MiB", mb)
	}
	res, err = c.Exec(t.Context(), sess, api.ExecRequest{Command: "md5sum /workspace/ten && head -c 83886080 /dev/zero > /workspace/eighty && echo ok"})
	if err != nil || !strings.HasPrefix(res.Stdout, sum) || !strings.HasSuffix(res.Stdout, "ok\n") {
		t.Fatalf("after the grow: %+v %v; want the old data and room for 80 MiB more", res, err)
	}

	if err := c.DeleteWorkspace(t.Context(), "data", true); err != nil {
		t.Fatal(err)
	}
	if left := s.leaks(t, sess); len(left) > 0 {
		t.Fatalf("left after deleting the workspace: %v", left)
	}
	if _, err := os.Stat(filepath.Join(s.DataDir, "workspaces", w.ID+".img")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("workspace image after delete: %v", err)
	}
}

// createOn starts (or finds) the session on workspace name.
func createOn(t *testing.T, c *client.Client, name string) (string, bool, error) {
	t.Helper()
	sess, err := c.CreateSession(t.Context(), api.CreateSessionRequest{Type: "sandbox", Workspace: name})
	return sess.ID, err == nil, err
}

// TestDiskRecovery kills the server (SIGKILL) with a running ephemeral
// sandbox, a workspace sandbox and a sandbox that then dies, plus a disk
// mounted with no session at all; the restarted server keeps the live
// ones with their data and releases the rest, and a graceful stop leaves
// no mount, loop device or ephemeral image behind.
func TestDiskRecovery(t *testing.T) {
	s := newDiskServer(t)
	free := s.account(t, "free")
	paid := s.account(t, "paid")
	fc, pc := s.Client(free), s.Client(paid)
	live := s.sandbox(t, free)
	dead := s.sandbox(t, free)
	if _, err := pc.CreateWorkspace(t.Context(), api.CreateWorkspaceRequest{Name: "keep"}); err != nil {
		t.Fatal(err)
	}
	onWS, _, err := createOn(t, pc, "keep")
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range []struct {
		c  *client.Client
		id string
	}{{fc, live}, {pc, onWS}} {
		if res, err := x.c.Exec(t.Context(), x.id, api.ExecRequest{Command: "echo " + x.id + " > /workspace/mark"}); err != nil || res.ExitCode != 0 {
			t.Fatalf("write: %+v %v", res, err)
		}
	}
	deadPID := s.agentPID(t, dead)
	s.kill()
	if out, err := exec.Command("kill", "-9", deadPID).CombinedOutput(); err != nil {
		t.Fatalf("kill: %v %s", err, out)
	}
	orphan := filepath.Join(s.DataDir, "disks", "s-orphanleftbyacrash")
	if err := disk.Create(t.Context(), orphan+".img", 32<<20, disk.Options{}); err != nil {
		t.Fatal(err)
	}
	if err := disk.Mount(orphan+".img", orphan); err != nil {
		t.Fatal(err)
	}

	s2 := startServer(t, s.DataDir, "--disk-size", strconv.Itoa(diskMB)+"MiB")
	defer s2.stop()
	fc, pc = s2.Client(free), s2.Client(paid)
	for _, x := range []struct {
		c  *client.Client
		id string
	}{{fc, live}, {pc, onWS}} {
		res, err := x.c.Exec(t.Context(), x.id, api.ExecRequest{Command: "cat /workspace/mark"})
		if err != nil || res.Stdout != x.id+"\n" {
			t.Fatalf("session %s after SIGKILL and restart: %+v %v\n%s", x.id, res, err, s2.Log())
		}
	}
	for _, id := range []string{dead, "s-orphanleftbyacrash"} {
		if left := s2.leaks(t, id); len(left) > 0 {
			t.Fatalf("left of %s after recovery: %v", id, left)
		}
	}
	if err := s2.stop(); err != nil {
		t.Fatalf("graceful stop: %v\n%s", err, s2.Log())
	}
	if l := loopDevices(t, s.DataDir); len(l) > 0 {
		t.Fatalf("loop devices left after graceful stop: %v", l)
	}
	if m := hostMounts(t, s.DataDir); len(m) > 0 {
		t.Fatalf("mounts left under the data dir: %v", m)
	}
	if imgs, _ := filepath.Glob(filepath.Join(s.DataDir, "disks", "*")); len(imgs) > 0 {
		t.Fatalf("disks left after graceful stop: %v", imgs)
	}
	if imgs, _ := filepath.Glob(filepath.Join(s.DataDir, "workspaces", "*.img")); len(imgs) != 1 {
		t.Fatalf("workspace images after graceful stop: %v, want the one workspace's", imgs)
	}
}

// TestLegacyWorkspace: a workspace made before disk quotas (a plain
// directory, no image) keeps working with its data and no quota, and
// cannot be grown (409).
func TestLegacyWorkspace(t *testing.T) {
	s := newDiskServer(t)
	key := s.account(t, "paid")
	c := s.Client(key)
	w, err := c.CreateWorkspace(t.Context(), api.CreateWorkspaceRequest{Name: "old"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	// What an earlier release left: the layer as a directory.
	if err := os.Remove(filepath.Join(s.DataDir, "workspaces", w.ID+".img")); err != nil {
		t.Fatal(err)
	}
	files := filepath.Join(s.DataDir, "workspaces", w.ID, "root", "upper", "workspace")
	if err := os.MkdirAll(files, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(files, "legacy"), []byte("kept\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s2 := startServer(t, s.DataDir, "--disk-size", strconv.Itoa(diskMB)+"MiB")
	defer s2.stop()
	c = s2.Client(key)
	sess, _, err := createOn(t, c, "old")
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Exec(t.Context(), sess, api.ExecRequest{Command: "cat /workspace/legacy && echo new > /workspace/new"})
	if err != nil || res.Stdout != "kept\n" {
		t.Fatalf("legacy workspace: %+v %v", res, err)
	}
	if mb := dfMB(t, c, sess, "/workspace"); mb <= diskMB*4 {
		t.Fatalf("legacy workspace has %d MiB: it should have no quota", mb)
	}
	if got, err := c.GetWorkspace(t.Context(), "old"); err != nil || got.DiskMB != 0 {
		t.Fatalf("legacy workspace: %+v %v, want disk_mb 0", got, err)
	}
	code, body := s2.do(t, key, "PATCH", "/v1/workspaces/old", `{"disk_mb": 128}`)
	expectError(t, code, body, 409, "failed_precondition")
	if err := c.DeleteSession(t.Context(), sess); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(files, "new")); err != nil || string(b) != "new\n" {
		t.Fatalf("write to the legacy workspace: %q %v", b, err)
	}
}

// TestDiskTemplate checks the formatted templates sandbox disks are copied
// from: one per size in DATA/disk-templates; a template damaged on the
// host's disk fails one create (a clear error, nothing left behind) and is
// formatted anew for the next; a template a killed server was writing is
// removed by its successor.
func TestDiskTemplate(t *testing.T) {
	s := newDiskServer(t)
	key := s.account(t, "free")
	c := s.Client(key)
	id := s.sandbox(t, key)
	tpl := filepath.Join(s.DataDir, "disk-templates", "ext4-"+strconv.Itoa(diskMB<<20)+".img")
	if _, err := os.Stat(tpl); err != nil {
		t.Fatalf("no template after a create: %v", err)
	}
	if err := c.DeleteSession(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	// Zero the superblock (ext4's is at byte 1024): a copy will not mount.
	f, err := os.OpenFile(tpl, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(make([]byte, 4096), 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := c.CreateSession(t.Context(), api.CreateSessionRequest{Type: "sandbox", Ephemeral: true}); err == nil {
		t.Fatal("a create on a damaged template succeeded")
	}
	if entries, _ := os.ReadDir(filepath.Join(s.DataDir, "disks")); len(entries) != 0 {
		t.Fatalf("the failed create left %v in DATA/disks", entries)
	}
	id = s.sandbox(t, key)
	if res, err := c.Exec(t.Context(), id, api.ExecRequest{Command: "echo ok > /tmp/x && cat /tmp/x"}); err != nil || res.Stdout != "ok\n" {
		t.Fatalf("after the template was made again: %+v %v", res, err)
	}
	if got := dfMB(t, c, id, "/tmp"); got < diskMB-8 || got > diskMB {
		t.Fatalf("disk of %d MiB, want about %d", got, diskMB)
	}

	// What a killed server was formatting goes at the next start.
	stale := tpl + ".1-1.tmp"
	if err := os.WriteFile(stale, []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	os.Chtimes(stale, old, old)
	s.kill()
	s2 := startServer(t, s.DataDir, "--disk-size", strconv.Itoa(diskMB)+"MiB")
	defer s2.stop()
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a stale template file outlived a restart: %v", err)
	}
}
