package sandbox

import (
	"context"
	"fmt"
	"time"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/errdefs"
	"github.com/chaserhq/chaser/internal/store"
)

// What front ends other than Chaser's own API (the E2B-compatible one) need
// of the session records: their stored form, their data, and moving their
// end. They add no second lifecycle: sessions are made, used and ended
// through the methods above.

// Record returns the stored record of one of the account's sessions,
// live or ended (until forgotten), or ErrNotFound.
func (s *Service) Record(ctx context.Context, acct store.Account, id string) (store.Session, error) {
	return s.session(ctx, acct, id)
}

// Records returns the stored records of the account's live sessions,
// oldest first.
func (s *Service) Records(ctx context.Context, acct store.Account) ([]store.Session, error) {
	return s.cfg.Store.ListSessions(ctx, acct.ID)
}

// SetE2B records the E2B front end's data (JSON) with one of the
// account's live sessions.
func (s *Service) SetE2B(ctx context.Context, acct store.Account, id, data string) error {
	x, err := s.session(ctx, acct, id)
	if err != nil {
		return err
	}
	if ended(x) {
		return endedError(x)
	}
	if err := s.cfg.Store.SetSessionE2B(ctx, id, data); err != nil {
		return err
	}
	s.mu.Lock()
	if h := s.live[id]; h != nil && h.sess != nil {
		h.sess.E2B = data
	}
	s.mu.Unlock()
	return nil
}

// Extend makes one of the account's live sessions expire d from now, but
// never later than its tier's TTL after its creation; it returns the new
// expiry. Errors: ErrNotFound, ErrFailedPrecondition once it ended,
// ErrInvalidArgument for d <= 0.
func (s *Service) Extend(ctx context.Context, acct store.Account, id string, d time.Duration) (time.Time, error) {
	if d <= 0 {
		return time.Time{}, errdefs.New(errdefs.ErrInvalidArgument, "the timeout must be positive")
	}
	x, err := s.session(ctx, acct, id)
	if err != nil {
		return time.Time{}, err
	}
	if ended(x) {
		return time.Time{}, endedError(x)
	}
	at := time.Now().UTC().Add(d)
	if most := x.CreatedAt.Add(s.tier(acct).TTL); at.After(most) {
		at = most
	}
	if err := s.cfg.Store.SetSessionExpiry(ctx, id, at); err != nil {
		return time.Time{}, err
	}
	s.mu.Lock()
	if h := s.live[id]; h != nil && h.sess != nil {
		h.sess.ExpiresAt = at
	}
	s.mu.Unlock()
	return at, nil
}

// Owner returns the account that owns session id. It checks no
// credential: only callers that authenticated the request another way (a
// per-sandbox token) may act on what it returns.
func (s *Service) Owner(ctx context.Context, id string) (store.Account, error) {
	x, err := s.cfg.Store.GetSession(ctx, id)
	if err != nil {
		return store.Account{}, err
	}
	all, err := s.cfg.Store.ListAccounts(ctx)
	if err != nil {
		return store.Account{}, err
	}
	for _, a := range all {
		if a.ID == x.AccountID {
			return a, nil
		}
	}
	return store.Account{}, fmt.Errorf("session %s: %w", id, errdefs.ErrNotFound)
}

// Tier returns the limits of the account's tier.
func (s *Service) Tier(acct store.Account) TierLimits { return s.tier(acct) }

// Follow streams the events of command cid of one of the account's
// sessions, from its start until its exit event, without touching the
// command: a client that goes away leaves it running.
func (s *Service) Follow(ctx context.Context, acct store.Account, id, cid string, emit func(api.Event) error) error {
	c, _, err := s.Agent(ctx, acct, id)
	if err != nil {
		return err
	}
	return follow(ctx, c, cid, emit)
}
