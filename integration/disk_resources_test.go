package integration

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/client"
)

// wantDisk checks that df in session id shows about mb MiB at path (ext4
// keeps a little for its metadata) and that a write of 100 MiB more than
// that fails with ENOSPC.
func wantDisk(t *testing.T, c *client.Client, id, path string, mb int) {
	t.Helper()
	if got := dfMB(t, c, id, path); got > mb || got < mb*3/4 {
		t.Fatalf("df %s in session %s shows %d MiB, want about %d", path, id, got, mb)
	}
	res, err := c.Exec(t.Context(), id, api.ExecRequest{Command: "dd if=/dev/zero of=" + path + "/fill bs=1M count=" + strconv.Itoa(mb+100) + "; rm -f " + path + "/fill"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(res.Stderr, "No space left on device") {
		t.Fatalf("dd of %d MiB into a %d MiB disk: %+v", mb+100, mb, res)
	}
}

// wantWorkspaceDisk checks that a workspace shows disk_mb mb both as its
// disk's size and in its resources.
func wantWorkspaceDisk(t *testing.T, w api.Workspace, mb int64) {
	t.Helper()
	if w.DiskMB != mb || w.Resources == nil || w.Resources.DiskMB == nil || *w.Resources.DiskMB != mb {
		t.Fatalf("workspace %s: disk_mb %d, resources %+v; want disk_mb %d in both", w.Name, w.DiskMB, w.Resources, mb)
	}
}

// TestDiskResources: the disk quota is the session's resources.disk_mb.
// A session that asks for none gets its tier's default from the config
// file; a paid session asking disk_mb 64 gets a 64 MiB disk (df shows it,
// a bigger write fails with ENOSPC); a workspace created with
// resources.disk_mb gets a disk of that size, which every session on it
// shows and uses, and grows with PATCH up to the tier's max.disk_mb (403
// beyond), the workspace and its sessions showing the new size.
func TestDiskResources(t *testing.T) {
	cfg := writeConfig(t, `
tiers:
  free:
    defaults: {disk_mb: 48}
  paid:
    defaults: {disk_mb: 40}
    max: {disk_mb: 160}
`)
	s := newServer(t, "--config", cfg)
	free, paid := s.account(t, api.TierFree), s.account(t, api.TierPaid)
	fc, pc := s.Client(free), s.Client(paid)

	sess, err := fc.CreateSession(t.Context(), api.CreateSessionRequest{Type: "sandbox"})
	if err != nil {
		t.Fatal(err)
	}
	if sess.Resources == nil || sess.Resources.DiskMB != 48 {
		t.Fatalf("free session: resources %+v, want the file's default disk_mb 48", sess.Resources)
	}
	wantDisk(t, fc, sess.ID, "/workspace", 48)

	status, b := s.do(t, paid, "POST", "/v1/sessions", `{"ephemeral":true,"resources":{"disk_mb":64}}`)
	if status != 201 {
		t.Fatalf("paid session asking disk_mb 64: %d %s", status, b)
	}
	decodeJSON(t, b, &sess)
	if sess.Resources == nil || sess.Resources.DiskMB != 64 {
		t.Fatalf("paid session: resources %+v, want disk_mb 64", sess.Resources)
	}
	wantDisk(t, pc, sess.ID, "/workspace", 64)
	wantDisk(t, pc, sess.ID, "/tmp", 64)
	if err := pc.DeleteSession(t.Context(), sess.ID); err != nil {
		t.Fatal(err)
	}
	status, b = s.do(t, paid, "POST", "/v1/sessions", `{"ephemeral":true,"resources":{"disk_mb":161}}`)
	expectError(t, status, b, 403, "permission_denied")
	if !strings.Contains(string(b), "disk_mb 161 is over the paid tier's maximum of 160") {
		t.Fatalf("403 without the limit: %s", b)
	}

	// A workspace asking for its disk gets it; one asking nothing gets
	// the tier's default, fixed at creation.
	dk := int64(80)
	w, err := pc.CreateWorkspace(t.Context(), api.CreateWorkspaceRequest{Name: "sized", Resources: &api.ResourceRequest{DiskMB: &dk}})
	if err != nil {
		t.Fatal(err)
	}
	wantWorkspaceDisk(t, w, 80)
	plain, err := pc.CreateWorkspace(t.Context(), api.CreateWorkspaceRequest{Name: "plain"})
	if err != nil {
		t.Fatal(err)
	}
	wantWorkspaceDisk(t, plain, 40)
	status, b = s.do(t, paid, "POST", "/v1/workspaces", `{"name":"huge","resources":{"disk_mb":200}}`)
	expectError(t, status, b, 403, "permission_denied")

	on, err := pc.CreateSession(t.Context(), api.CreateSessionRequest{Type: "sandbox", Workspace: "sized"})
	if err != nil {
		t.Fatal(err)
	}
	if on.Resources == nil || on.Resources.DiskMB != 80 {
		t.Fatalf("session on the workspace: resources %+v, want disk_mb 80", on.Resources)
	}
	wantDisk(t, pc, on.ID, "/workspace", 80)
	if res, err := pc.Exec(t.Context(), on.ID, api.ExecRequest{Command: "echo kept > /workspace/mark"}); err != nil || res.ExitCode != 0 {
		t.Fatalf("write: %+v %v", res, err)
	}
	if err := pc.DeleteSession(t.Context(), on.ID); err != nil {
		t.Fatal(err)
	}

	// Growth: bounded by the tier's max.disk_mb, recorded everywhere.
	status, b = s.do(t, paid, "PATCH", "/v1/workspaces/sized", `{"disk_mb":161}`)
	expectError(t, status, b, 403, "permission_denied")
	if got, err := pc.GetWorkspace(t.Context(), "sized"); err != nil {
		t.Fatal(err)
	} else {
		wantWorkspaceDisk(t, got, 80)
	}
	w, err = pc.GrowWorkspace(t.Context(), "sized", 160)
	if err != nil {
		t.Fatal(err)
	}
	wantWorkspaceDisk(t, w, 160)
	if got, err := pc.GetWorkspace(t.Context(), "sized"); err != nil {
		t.Fatal(err)
	} else {
		wantWorkspaceDisk(t, got, 160)
	}
	on, err = pc.CreateSession(t.Context(), api.CreateSessionRequest{Type: "sandbox", Workspace: "sized"})
	if err != nil {
		t.Fatal(err)
	}
	if on.Resources == nil || on.Resources.DiskMB != 160 {
		t.Fatalf("session on the grown workspace: resources %+v, want disk_mb 160", on.Resources)
	}
	wantDisk(t, pc, on.ID, "/workspace", 160)
	if res, err := pc.Exec(t.Context(), on.ID, api.ExecRequest{Command: "cat /workspace/mark"}); err != nil || res.Stdout != "kept\n" {
		t.Fatalf("data after the grow: %+v %v", res, err)
	}
	if err := pc.DeleteWorkspace(t.Context(), "sized", true); err != nil {
		t.Fatal(err)
	}
}

// TestDiskSizeOverConfigFile: --disk-size wins over the config file: it
// sets every tier's default disk and raises a file's lower maximum to it.
func TestDiskSizeOverConfigFile(t *testing.T) {
	cfg := writeConfig(t, `
tiers:
  free:
    defaults: {disk_mb: 48}
  paid:
    max: {disk_mb: 40}
`)
	s := newServer(t, "--config", cfg, "--disk-size", "56MiB")
	free, paid := s.account(t, api.TierFree), s.account(t, api.TierPaid)
	fc := s.Client(free)
	sess, err := fc.CreateSession(t.Context(), api.CreateSessionRequest{Type: "sandbox"})
	if err != nil {
		t.Fatal(err)
	}
	if sess.Resources == nil || sess.Resources.DiskMB != 56 {
		t.Fatalf("free session: resources %+v, want --disk-size's 56 MiB over the file's 48", sess.Resources)
	}
	wantDisk(t, fc, sess.ID, "/workspace", 56)
	if err := fc.DeleteSession(t.Context(), sess.ID); err != nil {
		t.Fatal(err)
	}
	status, b := s.do(t, paid, "POST", "/v1/sessions", `{"ephemeral":true,"resources":{"disk_mb":57}}`)
	expectError(t, status, b, 403, "permission_denied")
	if !strings.Contains(string(b), "maximum of 56") {
		t.Fatalf("403 without the raised maximum: %s", b)
	}
	status, b = s.do(t, paid, "POST", "/v1/sessions", `{"ephemeral":true}`)
	if status != 201 {
		t.Fatalf("paid session: %d %s", status, b)
	}
	decodeJSON(t, b, &sess)
	if sess.Resources == nil || sess.Resources.DiskMB != 56 {
		t.Fatalf("paid session: resources %+v, want disk_mb 56", sess.Resources)
	}
	if err := s.Client(paid).DeleteSession(t.Context(), sess.ID); err != nil {
		t.Fatal(err)
	}
}

// TestDiskNoQuota: with --no-disk-quota new sandboxes and workspaces get
// no disk image: resources still show the disk_mb asked for, but nothing
// bounds it (df shows the host's file system), the workspace's disk_mb is
// 0 and it cannot be grown (409).
func TestDiskNoQuota(t *testing.T) {
	s := newServer(t, "--no-disk-quota")
	paid := s.account(t, api.TierPaid)
	pc := s.Client(paid)
	status, b := s.do(t, paid, "POST", "/v1/sessions", `{"ephemeral":true,"resources":{"disk_mb":64}}`)
	if status != 201 {
		t.Fatalf("session: %d %s", status, b)
	}
	var sess api.Session
	decodeJSON(t, b, &sess)
	if sess.Resources == nil || sess.Resources.DiskMB != 64 {
		t.Fatalf("resources %+v, want disk_mb 64 shown", sess.Resources)
	}
	if mb := dfMB(t, pc, sess.ID, "/workspace"); mb <= 4*64 {
		t.Fatalf("df shows %d MiB: without quotas the layer should be on the host's file system", mb)
	}
	if _, err := os.Stat(filepath.Join(s.DataDir, "disks", sess.ID+".img")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("disk image with --no-disk-quota: %v", err)
	}
	if err := pc.DeleteSession(t.Context(), sess.ID); err != nil {
		t.Fatal(err)
	}
	dk := int64(64)
	w, err := pc.CreateWorkspace(t.Context(), api.CreateWorkspaceRequest{Name: "loose", Resources: &api.ResourceRequest{DiskMB: &dk}})
	if err != nil {
		t.Fatal(err)
	}
	if w.DiskMB != 0 || w.Resources == nil || w.Resources.DiskMB == nil || *w.Resources.DiskMB != 64 {
		t.Fatalf("workspace without quotas: disk_mb %d, resources %+v; want 0 (no disk) and 64 asked", w.DiskMB, w.Resources)
	}
	status, b = s.do(t, paid, "PATCH", "/v1/workspaces/loose", `{"disk_mb":128}`)
	expectError(t, status, b, 409, "failed_precondition")
}
