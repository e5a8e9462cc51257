package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/chaserhq/chaser/internal/disk"
	"github.com/chaserhq/chaser/internal/store"
)

// Disk layout (see docs/ARCHITECTURE.md, "Disk quotas"):
//
//	DiskDir/<sandbox>      mount point of the sandbox's writable layer
//	DiskDir/<sandbox>.img  image of an ephemeral sandbox (deleted with it),
//	                       a copy of DiskTemplates/ext4-<bytes>.img
//	WorkspaceDir/<ws>.img  image of a workspace (kept between sessions)
//	WorkspaceDir/<ws>/     plain directory of a workspace made before
//	                       quotas: still used as is, with no quota
//
// Every sandbox's layer is mounted at DiskDir/<sandbox>, whatever image it
// comes from, so teardown and recovery need only the sandbox id: the
// session's id, or the id the sandbox had in the warm pool
// (store.Session.Sandbox). The functions below take sandbox ids.

func (s *Service) diskMount(id string) string { return filepath.Join(s.cfg.DiskDir, id) }
func (s *Service) diskImage(id string) string { return filepath.Join(s.cfg.DiskDir, id+".img") }
func (s *Service) workspaceImage(id string) string {
	return filepath.Join(s.cfg.WorkspaceDir, id+".img")
}

// quotas tells whether writable layers can be disk images: those of
// workspaces that have one are mounted.
func (s *Service) quotas() bool { return s.cfg.DiskDir != "" }

// newDisks tells whether new sandboxes and workspaces get a disk image
// (not with --no-disk-quota).
func (s *Service) newDisks() bool { return s.quotas() && !s.cfg.NoDiskQuota }

// mountDisk prepares the writable layer of session id and returns the
// directory the runtime puts its upper and work directories in ("" for
// the runtime's own). An ephemeral session (ws nil) gets a fresh image of
// size bytes (0: no quota); a workspace's session mounts the workspace's
// image, or uses its plain directory if it predates quotas.
func (s *Service) mountDisk(ctx context.Context, id string, ws *store.Workspace, size int64) (string, error) {
	if !s.quotas() {
		if ws != nil {
			return s.workspaceDir(ws.ID), nil
		}
		return "", nil
	}
	img, mount := "", disk.Mount
	switch {
	case ws != nil:
		img = s.workspaceImage(ws.ID)
		if _, err := os.Stat(img); errors.Is(err, fs.ErrNotExist) {
			return s.workspaceDir(ws.ID), nil // made before quotas
		}
	case size <= 0 || !s.newDisks():
		return "", nil
	default:
		if err := os.MkdirAll(s.cfg.DiskDir, 0o700); err != nil {
			return "", err
		}
		img, mount = s.diskImage(id), disk.MountNew
		if err := disk.Create(ctx, img, size, s.diskOptions()); err != nil {
			return "", fmt.Errorf("disk of session %s: %w", id, err)
		}
	}
	mnt := s.diskMount(id)
	if err := mount(img, mnt); err != nil {
		s.releaseDisk(id)
		if ws == nil {
			// A template damaged on the host's disk would fail every
			// create of its size: the next one formats it anew.
			if ferr := disk.ForgetTemplate(size, s.diskOptions()); ferr != nil {
				s.log.Warn("forget disk template", "err", ferr)
			}
		}
		return "", fmt.Errorf("disk of session %s: %w", id, err)
	}
	return mnt, nil
}

// diskOptions are the options of an ephemeral sandbox's image: no
// journal, copied from the server's templates.
func (s *Service) diskOptions() disk.Options {
	return disk.Options{Templates: s.cfg.DiskTemplates}
}

// releaseDisk unmounts the writable layer of session id (its loop device
// goes with it) and deletes the image of an ephemeral session. A workspace
// keeps its image. Releasing what is not there is not an error.
func (s *Service) releaseDisk(id string) error {
	if !s.quotas() {
		return nil
	}
	if err := disk.Unmount(s.diskMount(id)); err != nil {
		return fmt.Errorf("disk of session %s: %w", id, err)
	}
	if err := os.Remove(s.diskImage(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("disk of session %s: %w", id, err)
	}
	return nil
}

// releaseOrphanDisks releases the disks in DiskDir of sessions that are
// not live (left by a crash between making a disk and recording or
// ending its session).
func (s *Service) releaseOrphanDisks() error {
	if !s.quotas() {
		return nil
	}
	disk.PruneTemplates(s.diskOptions())
	entries, err := os.ReadDir(s.cfg.DiskDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	seen := map[string]bool{}
	for _, e := range entries {
		id := strings.TrimSuffix(e.Name(), ".img")
		if seen[id] || s.sandboxInUse(id) {
			continue
		}
		seen[id] = true
		s.log.Info("releasing disk without a live session", "session_id", id)
		errs = append(errs, s.releaseDisk(id))
	}
	return errors.Join(errs...)
}

// createWorkspaceDisk makes the image of new workspace id, of size bytes
// (0, or disk quotas off: a plain directory, no quota). Workspaces keep a
// journal: their data outlives sandboxes and host crashes.
func (s *Service) createWorkspaceDisk(ctx context.Context, id string, size int64) error {
	if err := os.MkdirAll(s.cfg.WorkspaceDir, 0o700); err != nil {
		return err
	}
	if !s.newDisks() || size <= 0 {
		return os.Mkdir(s.workspaceDir(id), 0o700)
	}
	return disk.Create(ctx, s.workspaceImage(id), size, disk.Options{Journal: true})
}

// removeWorkspaceData deletes a workspace's image and directory.
func (s *Service) removeWorkspaceData(id string) error {
	err := os.Remove(s.workspaceImage(id))
	if errors.Is(err, fs.ErrNotExist) {
		err = nil
	}
	return errors.Join(err, os.RemoveAll(s.workspaceDir(id)))
}

// workspaceDisk returns the quota of workspace id (0 when it has none)
// and the bytes its files take: exact while a session has it mounted at
// mnt, else the host space its image holds (files plus ext4 metadata).
func (s *Service) workspaceDisk(id, mnt string) (quota, used int64) {
	var st unix.Stat_t
	if err := unix.Stat(s.workspaceImage(id), &st); err != nil {
		return 0, dirSize(s.workspaceDir(id))
	}
	if mnt != "" {
		if u, err := disk.UsageOf(mnt); err == nil {
			return st.Size, u.Used
		}
	}
	return st.Size, st.Blocks * 512
}

// workspaceDiskMB is the disk_mb of a session on workspace w: the size of
// its image, the one thing its sessions write to; for a workspace without
// one (made before disk quotas or with them off, unbounded) the size it
// was given, else def (the tier's default).
func (s *Service) workspaceDiskMB(w store.Workspace, def int64) int64 {
	if quota, _ := s.workspaceDisk(w.ID, ""); quota > 0 {
		return quota >> 20
	}
	if w.Resources.DiskMB > 0 {
		return w.Resources.DiskMB
	}
	return def
}
