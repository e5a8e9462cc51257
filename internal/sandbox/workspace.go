package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/chaserhq/chaser/api"
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
	if _, err := s.tier(acct).Resolve(acct.Tier, asked); err != nil {
		return api.Workspace{}, err
	}
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
	if err := os.MkdirAll(s.workspaceDir(w.ID), 0o700); err != nil {
		return api.Workspace{}, err
	}
	if err := s.cfg.Store.CreateWorkspace(ctx, w); err != nil {
		os.RemoveAll(s.workspaceDir(w.ID))
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
		SizeBytes: dirSize(s.workspaceDir(w.ID)), Resources: requestAPI(w.Resources)}
	if id, err := s.cfg.Store.GetDefault(ctx, acct.ID, w.SessionType); err == nil && id == w.ID {
		out.Default = true
	}
	x, err := s.sessionOn(ctx, acct, w.ID)
	if err != nil {
		return out, err
	}
	if x != nil {
		out.SessionID = &x.ID
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
	if err := os.RemoveAll(s.workspaceDir(w.ID)); err != nil {
		return fmt.Errorf("remove data of workspace %s: %w", w.ID, err)
	}
	s.log.Info("workspace deleted", "account", acct.ID, "workspace_id", w.ID)
	return nil
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
		if !known[e.Name()] {
			s.log.Info("removing workspace data without a workspace", "dir", e.Name())
			errs = append(errs, os.RemoveAll(filepath.Join(s.cfg.WorkspaceDir, e.Name())))
		}
	}
	return errors.Join(errs...)
}
