package integration

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/image/imagetest"
)

// usernsRange is the --userns-remap of the tests' remapped servers.
const (
	usernsBase  = 100000
	usernsRange = "100000:65536"
)

// agentHostUID returns the host uid of sandbox id's agent (its init), read
// on the host from /proc/PID/status.
func agentHostUID(t *testing.T, s *Server, id string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.stateDir(id), "pid"))
	if err != nil {
		t.Fatalf("the agent's pid file: %v", err)
	}
	f, err := os.Open(fmt.Sprintf("/proc/%s/status", strings.TrimSpace(string(b))))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Uid:"); ok {
			uid, err := strconv.Atoi(strings.Fields(v)[0])
			if err != nil {
				t.Fatal(err)
			}
			return uid
		}
	}
	t.Fatal("no Uid line in the agent's status")
	return -1
}

// TestUsernsRemap drives a server with --userns-remap: root in a sandbox is
// an unprivileged host uid of the range, yet it writes where root writes —
// the host image's /usr and an OCI image's files, through copy-up — the
// host's own files stay unchanged, and a workspace keeps its files' owners
// across sessions.
func TestUsernsRemap(t *testing.T) {
	reg := imagetest.StartRegistry(t)
	ref := reg.Push(t, "test/userns:v1", imagetest.Image(t, v1.Config{Env: []string{"PATH=/bin"}}, imagetest.BusyboxLayer(t)))
	// The remap is runc's: pinned even in CI's runsc pass.
	s := newServer(t, "--runtime", "runc", "--userns-remap", usernsRange, "--insecure-registry", reg.Host)
	key := s.account(t, "paid")
	c := s.Client(key)
	inRange := func(uid int) bool { return uid >= usernsBase && uid < usernsBase+65536 }

	t.Run("host image", func(t *testing.T) {
		id := s.sandbox(t, key)
		if uid := agentHostUID(t, s, id); !inRange(uid) {
			t.Fatalf("the agent runs as host uid %d; want one of the range %s", uid, usernsRange)
		}
		motd, err := os.ReadFile("/usr/share/base-files/motd")
		if err != nil {
			t.Fatal(err)
		}
		// What an install does: new directories and files under /usr,
		// changes to files the host image has from the host's /usr.
		out := run(t, s, key, id, "id -u && stat -c %u /usr/bin /usr/share/base-files/motd && mkdir -p /usr/local/lib/x && echo x > /usr/local/lib/x/f && echo z >> /usr/share/base-files/motd && tail -c 2 /usr/share/base-files/motd")
		if out != "0\n0\n0\nz" {
			t.Fatalf("inside: %q; want root owning the host's /usr and writing to it", out)
		}
		if after, _ := os.ReadFile("/usr/share/base-files/motd"); string(after) != string(motd) {
			t.Fatal("the host's /usr/share/base-files/motd changed")
		}
		if _, err := os.Stat("/usr/local/lib/x"); err == nil {
			t.Fatal("/usr/local/lib/x appeared on the host")
		}
	})

	t.Run("OCI image", func(t *testing.T) {
		status, body, id := createWithImage(t, s, key, ref)
		if status != 201 {
			t.Fatalf("create with %s: %d %s", ref, status, body)
		}
		out := run(t, s, key, id, "echo x >> /etc/passwd && mkdir -p /usr/local/x && chown 1000:1000 /usr/local/x && id -u && stat -c %u:%g /etc/passwd /usr/local/x")
		if out != "0\n0:0\n1000:1000" {
			t.Fatalf("inside: %q", out)
		}
		// The layers were unpacked for the range, in a cache of their own.
		layers, _ := filepath.Glob(filepath.Join(s.DataDir, "images-userns-100000-65536", "l", "*", "etc", "passwd"))
		if len(layers) == 0 {
			t.Fatal("no layer of the image in the remapped cache")
		}
		for _, p := range layers {
			var st unix.Stat_t
			if err := unix.Lstat(p, &st); err != nil || !inRange(int(st.Uid)) {
				t.Errorf("%s: host owner %d, %v; want the range", p, st.Uid, err)
			}
		}
		if l, _ := filepath.Glob(filepath.Join(s.DataDir, "images", "l", "*")); len(l) > 0 {
			t.Errorf("layers in the unshifted cache: %v", l)
		}
	})

	t.Run("workspace keeps owners", func(t *testing.T) {
		ctx := t.Context()
		if _, err := c.CreateWorkspace(ctx, api.CreateWorkspaceRequest{Name: "owners", SessionType: "sandbox"}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.DeleteWorkspace(context.Background(), "owners", true) })
		sess, err := c.CreateSession(ctx, api.CreateSessionRequest{Type: "sandbox", Workspace: "owners"})
		if err != nil {
			t.Fatal(err)
		}
		run(t, s, key, sess.ID, "mkdir -p /home/app && chown 1000:1000 /home/app")
		if res, err := c.Exec(ctx, sess.ID, api.ExecRequest{Command: "echo mine > /home/app/f", User: "1000:1000"}); err != nil || res.ExitCode != 0 {
			t.Fatalf("write as 1000: %+v %v", res, err)
		}
		if err := c.DeleteSession(ctx, sess.ID); err != nil {
			t.Fatal(err)
		}
		sess2, err := c.CreateSession(ctx, api.CreateSessionRequest{Type: "sandbox", Workspace: "owners"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.DeleteSession(context.Background(), sess2.ID) })
		if sess2.ID == sess.ID {
			t.Fatal("the second session is the first")
		}
		if out := run(t, s, key, sess2.ID, "stat -c %u:%g /home/app /home/app/f && cat /home/app/f"); out != "1000:1000\n1000:1000\nmine" {
			t.Fatalf("second session: %q; want the owners the first one gave", out)
		}
		if res, err := c.Exec(ctx, sess2.ID, api.ExecRequest{Command: "echo again >> /home/app/f", User: "1000:1000"}); err != nil || res.ExitCode != 0 {
			t.Fatalf("user 1000 writes its file again: %+v %v", res, err)
		}
	})
}

// TestUsernsRemapAdoptsWorkspace turns the remap on for a server whose
// workspace was written with sandbox root as host root: the next session
// on it finds its files with the owners they had, and writes them.
func TestUsernsRemapAdoptsWorkspace(t *testing.T) {
	s := newServer(t, "--runtime", "runc")
	key := s.account(t, "paid")
	c := s.Client(key)
	ctx := t.Context()
	ws, err := c.CreateWorkspace(ctx, api.CreateWorkspaceRequest{Name: "before", SessionType: "sandbox"})
	if err != nil {
		t.Fatal(err)
	}
	sess, err := c.CreateSession(ctx, api.CreateSessionRequest{Type: "sandbox", Workspace: "before"})
	if err != nil {
		t.Fatal(err)
	}
	run(t, s, key, sess.ID, "mkdir -p /home/app && chown 1000:1000 /home/app && echo root > /root/f")
	if res, err := c.Exec(ctx, sess.ID, api.ExecRequest{Command: "echo mine > /home/app/f", User: "1000:1000"}); err != nil || res.ExitCode != 0 {
		t.Fatalf("write as 1000: %+v %v", res, err)
	}
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}

	s2 := startServer(t, s.DataDir, "--runtime", "runc", "--userns-remap", usernsRange)
	t.Cleanup(func() {
		s2.stop()
		if t.Failed() {
			t.Logf("server log:\n%s", s2.Log())
		}
	})
	c = s2.Client(key)
	sess2, err := c.CreateSession(ctx, api.CreateSessionRequest{Type: "sandbox", Workspace: "before"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.DeleteSession(context.Background(), sess2.ID) })
	if uid := agentHostUID(t, s2, sess2.ID); uid != usernsBase {
		t.Fatalf("agent's host uid %d; want %d", uid, usernsBase)
	}
	if out := run(t, s2, key, sess2.ID, "stat -c %u:%g /home/app/f /root/f && echo more >> /root/f && cat /root/f"); out != "1000:1000\n0:0\nroot\nmore" {
		t.Fatalf("after the remap: %q; want the owners from before, writable", out)
	}
	if res, err := c.Exec(ctx, sess2.ID, api.ExecRequest{Command: "echo again >> /home/app/f", User: "1000:1000"}); err != nil || res.ExitCode != 0 {
		t.Fatalf("user 1000 writes its file: %+v %v", res, err)
	}
	// The writable layer: the workspace's disk image mounted for the
	// session, or (without disk quotas) the workspace's directory.
	var st unix.Stat_t
	err = unix.Lstat(filepath.Join(s.DataDir, "disks", sess2.ID, "root", "upper", "home", "app", "f"), &st)
	if errors.Is(err, unix.ENOENT) {
		err = unix.Lstat(filepath.Join(s.DataDir, "workspaces", ws.ID, "root", "upper", "home", "app", "f"), &st)
	}
	if err != nil || st.Uid != usernsBase+1000 {
		t.Errorf("the file on the host: owner %d, %v; want %d", st.Uid, err, usernsBase+1000)
	}
}
