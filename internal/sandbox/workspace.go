package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/disk"
	"github.com/chaserhq/chaser/internal/errdefs"
	"github.com/chaserhq/chaser/internal/paging"
	"github.com/chaserhq/chaser/internal/store"
)

// DefaultWorkspaceName is the name of the workspace made on a paid
// account's first targetless request.
const DefaultWorkspaceName = "default"

var validWorkspaceName = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,62}$`)

func (s *Service) workspaceDir(id string) string { return filepath.Join(s.cfg.WorkspaceDir, id) }

func needsPaid(acct store.Account) error {
	if acct.Tier == api.TierPaid {
		return nil
	}
	return errdefs.New(errdefs.ErrPermissionDenied, fmt.Sprintf(
		"workspaces need a paid account; account %s is on the %s tier (use an ephemeral sandbox instead)", acct.Name, acct.Tier))
}

// workspace returns the account's workspace by name, or ErrNotFound.
func (s *Service) workspace(ctx context.Context, acct store.Account, name string) (store.Workspace, error) {
	if err := needsPaid(acct); err != nil {
		return store.Workspace{}, err
	}
	w, err := s.cfg.Store.GetWorkspace(ctx, acct.ID, name)
	if errors.Is(err, errdefs.ErrNotFound) {
		return w, errdefs.New(errdefs.ErrNotFound, fmt.Sprintf("workspace %q not found", name))
	}
	return w, err
}

// defaultWorkspace returns the account's default workspace for typ, making
// one (named "default") on first use.
func (s *Service) defaultWorkspace(ctx context.Context, acct store.Account, typ string) (store.Workspace, error) {
	unlock, err := s.wsLocks.lock(ctx, "default/"+acct.ID)
	if err != nil {
		return store.Workspace{}, err
	}
	defer unlock()
	id, err := s.cfg.Store.GetDefault(ctx, acct.ID, typ)
	if err == nil {
		return s.cfg.Store.GetWorkspaceByID(ctx, id)
	}
	if !errors.Is(err, errdefs.ErrNotFound) {
		return store.Workspace{}, err
	}
	w, err := s.cfg.Store.GetWorkspace(ctx, acct.ID, DefaultWorkspaceName)
	if errors.Is(err, errdefs.ErrNotFound) {
		var aw api.Workspace
		aw, err = s.CreateWorkspace(ctx, acct, api.CreateWorkspaceRequest{Name: DefaultWorkspaceName, SessionType: typ})
		w = store.Workspace{ID: aw.ID, AccountID: acct.ID, Name: aw.Name, SessionType: aw.SessionType, Image: aw.Image, CreatedAt: aw.CreatedAt}
	}
	if err != nil {
		return store.Workspace{}, err
	}
	if err := s.cfg.Store.SetDefault(ctx, acct.ID, typ, w.ID); err != nil {
		return store.Workspace{}, err
	}
	s.log.Info("default workspace made", "account", acct.ID, "workspace_id", w.ID)
	return w, nil
}

// sessionOn returns the session on workspace id, if any.
func (s *Service) sessionOn(ctx context.Context, acct store.Account, wsID string) (*store.Session, error) {
	list, err := s.cfg.Store.ListSessions(ctx, acct.ID)
	if err != nil {
		return nil, err
	}
	for _, x := range list {
		if x.WorkspaceID != nil && *x.WorkspaceID == wsID {
			return &x, nil
		}
	}
	return nil, nil
}

// onWorkspace returns the session running on ws, starting one if there is
// none. A session still starting or stopping on it is waited for: the
// store's one-session-per-workspace index keeps a new one from starting on
// an upper directory the old one still has mounted.
func (s *Service) onWorkspace(ctx context.Context, acct store.Account, ws store.Workspace) (api.Session, bool, error) {
	unlock, err := s.wsLocks.lock(ctx, ws.ID)
	if err != nil {
		return api.Session{}, false, err
	}
	defer unlock()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		x, err := s.sessionOn(ctx, acct, ws.ID)
		if err != nil {
			return api.Session{}, false, err
		}
		if x == nil {
			sess, err := s.create(ctx, acct, ws.SessionType, ws.Image, Resources{}, store.Network{}, &ws)
			return sess, err == nil, err
		}
		if x.Status == api.StatusRunning {
			return toAPI(*x), false, nil
		}
		if time.Now().After(deadline) {
			return api.Session{}, false, errdefs.New(errdefs.ErrUnavailable, fmt.Sprintf("session %s on workspace %s is still %s; retry later", x.ID, ws.Name, x.Status))
		}
		select {
		case <-ctx.Done():
			return api.Session{}, false, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// CreateWorkspace creates a workspace (paid accounts only). Its image is
// checked now and fixed for good.
func (s *Service) CreateWorkspace(ctx context.Context, acct store.Account, req api.CreateWorkspaceRequest) (api.Workspace, error) {
	if err := needsPaid(acct); err != nil {
		return api.Workspace{}, err
	}
	if req.SessionType == "" {
		req.SessionType = api.SessionTypeSandbox
	}
	if req.SessionType != api.SessionTypeSandbox {
		return api.Workspace{}, errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("unknown session type %q (use %q)", req.SessionType, api.SessionTypeSandbox))
	}
	if !validWorkspaceName.MatchString(req.Name) {
		return api.Workspace{}, errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("workspace name %q: use 1-63 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit", req.Name))
	}
	asked, err := Asked(req.Resources)
	if err != nil {
		return api.Workspace{}, err
	}
	res, err := s.tier(acct).Resolve(acct.Tier, asked)
	if err != nil {
		return api.Workspace{}, err
	}
	// The disk is made now, of the size asked or the tier's default, and
	// keeps it (until grown) whatever the tier's default becomes.
	asked.DiskMB = res.DiskMB
	var nw store.Network // none asked: the tier's mode, session by session
	if req.Network != nil {
		if nw, err = s.resolveNetwork(acct.Tier, s.tier(acct), req.Network); err != nil {
			return api.Workspace{}, err
		}
	}
	ref := req.Image
	if ref == "" {
		ref = s.cfg.DefaultImage
	}
	img, err := s.cfg.Images.Resolve(ctx, ref)
	if err != nil {
		return api.Workspace{}, err
	}
	img.Release() // only its canonical reference is kept; sessions resolve it again
	w := store.Workspace{ID: NewID("ws"), AccountID: acct.ID, Name: req.Name, SessionType: req.SessionType,
		Image: img.Ref, CreatedAt: time.Now().UTC(), Resources: asked, Network: nw}
	if err := s.createWorkspaceDisk(ctx, w.ID, asked.DiskMB<<20); err != nil {
		return api.Workspace{}, fmt.Errorf("workspace %s: %w", w.ID, err)
	}
	if err := s.cfg.Store.CreateWorkspace(ctx, w); err != nil {
		s.removeWorkspaceData(w.ID)
		if errors.Is(err, errdefs.ErrAlreadyExists) {
			return api.Workspace{}, errdefs.New(errdefs.ErrAlreadyExists, fmt.Sprintf("a workspace named %q already exists", req.Name))
		}
		return api.Workspace{}, err
	}
	s.log.Info("workspace created", "account", acct.ID, "workspace_id", w.ID, "name", w.Name)
	return s.workspaceAPI(ctx, acct, w)
}

func (s *Service) workspaceAPI(ctx context.Context, acct store.Account, w store.Workspace) (api.Workspace, error) {
	out := api.Workspace{ID: w.ID, Name: w.Name, SessionType: w.SessionType, Image: w.Image, CreatedAt: w.CreatedAt,
		Resources: requestAPI(w.Resources)}
	if id, err := s.cfg.Store.GetDefault(ctx, acct.ID, w.SessionType); err == nil && id == w.ID {
		out.Default = true
	}
	x, err := s.sessionOn(ctx, acct, w.ID)
	if err != nil {
		return out, err
	}
	mnt := ""
	if x != nil {
		out.SessionID = &x.ID
		mnt = s.diskMount(x.Sandbox())
	}
	var quota int64
	quota, out.SizeBytes = s.workspaceDisk(w.ID, mnt)
	out.DiskMB = quota >> 20
	if out.DiskMB > 0 {
		// The image is the truth, the record follows it (SetWorkspaceDisk):
		// both fields show its size.
		r := w.Resources
		r.DiskMB = out.DiskMB
		out.Resources = requestAPI(r)
	}
	return out, nil
}

// dirSize is the disk space of the files under dir (like du).
func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if fi, err := d.Info(); err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

// GetWorkspace returns one of the account's workspaces.
func (s *Service) GetWorkspace(ctx context.Context, acct store.Account, name string) (api.Workspace, error) {
	w, err := s.workspace(ctx, acct, name)
	if err != nil {
		return api.Workspace{}, err
	}
	return s.workspaceAPI(ctx, acct, w)
}

// ListWorkspaces returns one page of workspaces, oldest first: the
// account's (none on the free tier), or with all every account's, each
// with its AccountID (the admin only: others get ErrPermissionDenied).
// next is the next_token of the page after, "" on the last.
func (s *Service) ListWorkspaces(ctx context.Context, acct store.Account, all bool, q paging.Query) (page []api.Workspace, next string, err error) {
	owner := acct.ID
	if all {
		if !acct.Admin {
			return nil, "", errNotAdmin("workspaces")
		}
		owner = ""
	}
	list, err := s.cfg.Store.ListWorkspacesPage(ctx, owner, q.After, q.Limit+1)
	if err != nil {
		return nil, "", err
	}
	list, next = paging.Cut(list, q, "workspaces", func(w store.Workspace) paging.Cursor {
		return paging.Cursor{Time: w.CreatedAt, Key: w.ID}
	})
	page = make([]api.Workspace, 0, len(list))
	for _, w := range list {
		aw, err := s.workspaceAPI(ctx, store.Account{ID: w.AccountID}, w)
		if err != nil {
			return nil, "", err
		}
		if all {
			aw.AccountID = w.AccountID
		}
		page = append(page, aw)
	}
	return page, next, nil
}

// DeleteWorkspace deletes a workspace and its data. A session running on it
// makes this fail with ErrFailedPrecondition unless force is set, which
// stops the session first.
func (s *Service) DeleteWorkspace(ctx context.Context, acct store.Account, name string, force bool) error {
	w, err := s.workspace(ctx, acct, name)
	if err != nil {
		return err
	}
	unlock, err := s.wsLocks.lock(ctx, w.ID)
	if err != nil {
		return err
	}
	defer unlock()
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	x, err := s.sessionOn(dctx, acct, w.ID)
	if err != nil {
		return err
	}
	if x != nil {
		if !force {
			return errdefs.New(errdefs.ErrFailedPrecondition, fmt.Sprintf(
				"workspace %q has a running session (%s): delete the session first, or delete the workspace with force", name, x.ID))
		}
		if err := s.end(dctx, x.ID, api.ReasonDeleted); err != nil {
			return err
		}
	}
	if err := s.cfg.Store.DeleteWorkspace(dctx, w.ID); err != nil {
		return err
	}
	if err := s.removeWorkspaceData(w.ID); err != nil {
		return fmt.Errorf("remove data of workspace %s: %w", w.ID, err)
	}
	s.log.Info("workspace deleted", "account", acct.ID, "workspace_id", w.ID)
	return nil
}

// DeleteAccount deletes an account (found by account.DeletableBy) with
// everything it owns: its keys stop working at once. Live sessions make
// this fail with ErrFailedPrecondition unless force is set, which ends
// them first (reason deleted); its workspaces' data is removed.
func (s *Service) DeleteAccount(ctx context.Context, a store.Account, force bool) error {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	live, err := s.cfg.Store.ListSessions(dctx, a.ID)
	if err != nil {
		return err
	}
	if len(live) > 0 && !force {
		ids := make([]string, 0, len(live))
		for _, x := range live {
			ids = append(ids, x.ID)
		}
		return errdefs.New(errdefs.ErrFailedPrecondition, fmt.Sprintf(
			"account %q has %d live sessions (%s): delete them first, or delete the account with force", a.Name, len(live), strings.Join(ids, ", ")))
	}
	for _, x := range live {
		if err := s.end(dctx, x.ID, api.ReasonDeleted); err != nil {
			return fmt.Errorf("end session %s of account %s: %w", x.ID, a.ID, err)
		}
	}
	ws, err := s.cfg.Store.ListWorkspaces(dctx, a.ID)
	if err != nil {
		return err
	}
	// A session started meanwhile (its key still worked) makes the store
	// refuse: the account stays, and a second try ends that one too.
	if err := s.cfg.Store.DeleteAccount(dctx, a.ID); err != nil {
		if errors.Is(err, errdefs.ErrFailedPrecondition) {
			return errdefs.New(errdefs.ErrFailedPrecondition, fmt.Sprintf("account %q started a session while being deleted: try again", a.Name))
		}
		return err
	}
	var errs []error
	for _, w := range ws {
		if err := s.removeWorkspaceData(w.ID); err != nil {
			errs = append(errs, fmt.Errorf("remove data of workspace %s: %w", w.ID, err))
		}
	}
	s.log.Info("account deleted", "account", a.ID, "sessions_ended", len(live), "workspaces", len(ws))
	return errors.Join(errs...)
}

// GrowWorkspace grows the disk of one of the account's workspaces to
// req.DiskMB MiB. A session running on it keeps running and sees the new
// size where the kernel allows growing a mounted file system; where it
// does not, that is ErrFailedPrecondition (stop the session first).
// Errors: ErrInvalidArgument for a size that is missing or below the
// current one (disks never shrink), ErrPermissionDenied beyond the tier's
// maximum (Max.DiskMB), ErrFailedPrecondition for a workspace without a
// disk image (made before disk quotas or with them off). The new size is
// recorded as the workspace's resources.disk_mb, and its session's.
func (s *Service) GrowWorkspace(ctx context.Context, acct store.Account, name string, req api.UpdateWorkspaceRequest) (api.Workspace, error) {
	w, err := s.workspace(ctx, acct, name)
	if err != nil {
		return api.Workspace{}, err
	}
	if req.DiskMB == nil || *req.DiskMB <= 0 {
		return api.Workspace{}, errdefs.New(errdefs.ErrInvalidArgument, `"disk_mb" is required: the new size of the workspace's disk in MiB, such as 20480`)
	}
	size := *req.DiskMB << 20
	if *req.DiskMB > 1<<30 || size < disk.MinSize {
		return api.Workspace{}, errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("disk_mb %d is out of range", *req.DiskMB))
	}
	if max := s.tier(acct).Max.DiskMB; max > 0 && *req.DiskMB > max {
		return api.Workspace{}, errdefs.New(errdefs.ErrPermissionDenied, fmt.Sprintf(
			"disk_mb %d is over the %s tier's maximum of %d", *req.DiskMB, acct.Tier, max))
	}
	unlock, err := s.wsLocks.lock(ctx, w.ID)
	if err != nil {
		return api.Workspace{}, err
	}
	defer unlock()
	quota, _ := s.workspaceDisk(w.ID, "")
	switch {
	case quota == 0:
		return api.Workspace{}, errdefs.New(errdefs.ErrFailedPrecondition, fmt.Sprintf(
			"workspace %q has no disk image to grow (it was made before disk quotas, or with them off): it has no size limit", name))
	case size < quota:
		return api.Workspace{}, errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf(
			"workspace %q has %d MiB; a disk can only grow, not shrink to %d MiB", name, quota>>20, *req.DiskMB))
	}
	gctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	if err := disk.Grow(gctx, s.workspaceImage(w.ID), size); err != nil {
		if errors.Is(err, disk.ErrInUse) {
			return api.Workspace{}, errdefs.New(errdefs.ErrFailedPrecondition, fmt.Sprintf(
				"workspace %q is in use and this server cannot grow a mounted disk (it lacks CAP_SYS_RESOURCE): delete its session, then grow it", name))
		}
		return api.Workspace{}, fmt.Errorf("grow workspace %s: %w", w.ID, err)
	}
	s.log.Info("workspace grown", "account", acct.ID, "workspace_id", w.ID, "from_bytes", quota, "to_bytes", size)
	// The image is the truth (sessions take their disk_mb from it); the
	// record follows, so resources.disk_mb shows the size too.
	if err := s.cfg.Store.SetWorkspaceDisk(gctx, w.ID, *req.DiskMB); err != nil {
		return api.Workspace{}, fmt.Errorf("record the new size of workspace %s: %w", w.ID, err)
	}
	w.Resources.DiskMB = *req.DiskMB
	return s.workspaceAPI(ctx, acct, w)
}

// SetDefault makes a workspace the account's default for its session type.
func (s *Service) SetDefault(ctx context.Context, acct store.Account, typ, name string) error {
	if typ != api.SessionTypeSandbox {
		return errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("unknown session type %q (use %q)", typ, api.SessionTypeSandbox))
	}
	w, err := s.workspace(ctx, acct, name)
	if err != nil {
		return err
	}
	if w.SessionType != typ {
		return errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("workspace %q is for %s sessions, not %s", name, w.SessionType, typ))
	}
	return s.cfg.Store.SetDefault(ctx, acct.ID, typ, w.ID)
}

// GetDefault returns the account's default workspace for a session type.
func (s *Service) GetDefault(ctx context.Context, acct store.Account, typ string) (api.Workspace, error) {
	if err := needsPaid(acct); err != nil {
		return api.Workspace{}, err
	}
	id, err := s.cfg.Store.GetDefault(ctx, acct.ID, typ)
	if errors.Is(err, errdefs.ErrNotFound) {
		return api.Workspace{}, errdefs.New(errdefs.ErrNotFound, fmt.Sprintf("no default %s workspace yet (the first targetless request makes one)", typ))
	}
	if err != nil {
		return api.Workspace{}, err
	}
	w, err := s.cfg.Store.GetWorkspaceByID(ctx, id)
	if err != nil {
		return api.Workspace{}, err
	}
	return s.workspaceAPI(ctx, acct, w)
}

// removeOrphanWorkspaces deletes workspace directories that no stored
// workspace owns (left by a crash during a delete).
func (s *Service) removeOrphanWorkspaces(ctx context.Context) error {
	list, err := s.cfg.Store.ListWorkspaces(ctx, "")
	if err != nil {
		return err
	}
	known := map[string]bool{}
	for _, w := range list {
		known[w.ID] = true
	}
	entries, err := os.ReadDir(s.cfg.WorkspaceDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		id := strings.TrimSuffix(e.Name(), ".img")
		if known[id] {
			continue
		}
		p := filepath.Join(s.cfg.WorkspaceDir, e.Name())
		if devs, _ := disk.Devices(p); len(devs) > 0 {
			s.log.Warn("workspace image without a workspace is still attached; left for now", "file", e.Name(), "devices", devs)
			continue
		}
		s.log.Info("removing workspace data without a workspace", "file", e.Name())
		errs = append(errs, os.RemoveAll(p))
	}
	return errors.Join(errs...)
}
