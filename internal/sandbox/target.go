package sandbox

import (
	"context"
	"sync"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/store"
)

// sharedSandbox is the throwaway sandbox that an account's targetless
// requests of one image share. mu serializes finding-or-making it, so two
// concurrent first calls make one sandbox, not two.
type sharedSandbox struct {
	mu sync.Mutex
	id string
}

// Target resolves the target of a request that an agent repeats without
// remembering where the last one ran (the MCP terminal tool). It is Create,
// except that a throwaway sandbox it would make — the free tier's, or one
// of an image, which a workspace cannot run — is kept and shared: later
// requests of the account for the same image run in it while it runs, so
// they find the files the earlier ones wrote. It ends like any session (TTL,
// idle timeout, DELETE), and the next request makes a new one. Errors are
// Create's.
//
// POST /v1/exec does not share: its caller gets one answer and cannot
// clean up after it, so its throwaway sandbox is destroyed at once
// (ExecTargetless).
func (s *Service) Target(ctx context.Context, acct store.Account, req api.CreateSessionRequest) (api.Session, error) {
	if req.Workspace != "" || !req.Ephemeral && req.Image == "" && acct.Tier == api.TierPaid {
		sess, _, err := s.Create(ctx, acct, req)
		return sess, err
	}
	key := acct.ID + "\x00" + req.Image
	s.mu.Lock()
	if s.shared == nil {
		s.shared = make(map[string]*sharedSandbox)
	}
	box := s.shared[key]
	if box == nil {
		box = &sharedSandbox{}
		s.shared[key] = box
	}
	s.mu.Unlock()

	box.mu.Lock()
	defer box.mu.Unlock()
	if box.id != "" {
		if sess, err := s.Get(ctx, acct, box.id); err == nil && sess.Status == api.StatusRunning {
			return sess, nil
		}
	}
	req.Ephemeral = true
	sess, _, err := s.Create(ctx, acct, req)
	if err != nil {
		return sess, err
	}
	box.id = sess.ID
	return sess, nil
}
