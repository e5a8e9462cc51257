package sandbox

import (
	"context"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/errdefs"
	"github.com/chaserhq/chaser/internal/store"
)

// errNotAdmin is the answer to an account asking for every account's
// resources.
func errNotAdmin(what string) error {
	return errdefs.New(errdefs.ErrPermissionDenied, "all=true lists every account's "+what+" and is for the admin only; drop it to list your own")
}

// ListAll returns every account's sessions, each with its AccountID. Only
// the admin may: others get ErrPermissionDenied.
func (s *Service) ListAll(ctx context.Context, acct store.Account) ([]api.Session, error) {
	if !acct.Admin {
		return nil, errNotAdmin("sessions")
	}
	list, err := s.cfg.Store.ListSessions(ctx, "")
	if err != nil {
		return nil, err
	}
	out := make([]api.Session, 0, len(list))
	for _, x := range list {
		a := toAPI(x)
		a.AccountID = x.AccountID
		out = append(out, a)
	}
	return out, nil
}

// ListAllWorkspaces returns every account's workspaces, each with its
// AccountID. Only the admin may: others get ErrPermissionDenied.
func (s *Service) ListAllWorkspaces(ctx context.Context, acct store.Account) ([]api.Workspace, error) {
	if !acct.Admin {
		return nil, errNotAdmin("workspaces")
	}
	list, err := s.cfg.Store.ListWorkspaces(ctx, "")
	if err != nil {
		return nil, err
	}
	out := make([]api.Workspace, 0, len(list))
	for _, w := range list {
		aw, err := s.workspaceAPI(ctx, store.Account{ID: w.AccountID}, w)
		if err != nil {
			return nil, err
		}
		aw.AccountID = w.AccountID
		out = append(out, aw)
	}
	return out, nil
}
