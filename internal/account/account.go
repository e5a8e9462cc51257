// Package account manages accounts and API keys: creation, the admin
// account made on first start, and authentication of keys.
//
// A key reads "chaser_<id>_<secret>". The id is public and finds the stored
// record; only the SHA-256 of the secret is stored, and it is compared in
// constant time. Secrets are 160 random bits, so a fast hash is enough.
package account

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/errdefs"
	"github.com/chaserhq/chaser/internal/store"
)

// Service manages accounts.
type Service struct {
	store store.Store

	// keys remembers recently authenticated keys by key id, so a busy
	// client's requests cost a SHA-256, not a store read each (a store
	// read serializes with every other on SQLite's one connection). Only
	// successes are kept, each for KeyCacheTTL: a key revoked or an
	// account changed in the store keeps working for at most that long
	// (account deletion calls ForgetAccount; whatever else revokes keys
	// must call Forget).
	mu   sync.Mutex
	keys map[string]cachedKey
}

// cachedKey is a key that authenticated recently.
type cachedKey struct {
	hash    string
	acct    store.Account
	expires time.Time
}

// KeyCacheTTL is how long a successful authentication is remembered;
// keyCacheMax bounds how many are.
const (
	KeyCacheTTL = 10 * time.Second
	keyCacheMax = 4096
)

// New returns an account service over st.
func New(st store.Store) *Service { return &Service{store: st, keys: map[string]cachedKey{}} }

// Forget drops what Authenticate remembers of the key with this id: call
// it after revoking the key or changing its account.
func (s *Service) Forget(keyID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.keys, keyID)
}

// ForgetAccount drops what Authenticate remembers of every key of the
// account: after it is deleted, its keys fail at once.
func (s *Service) ForgetAccount(accountID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, k := range s.keys {
		if k.acct.ID == accountID {
			delete(s.keys, id)
		}
	}
}

var enc = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

func random(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return enc.EncodeToString(b)
}

func hash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

var validName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$`)

// Create creates an account and returns it with its API key (shown once).
// Errors: ErrInvalidArgument for a bad name or tier, ErrAlreadyExists for a
// taken name.
func (s *Service) Create(ctx context.Context, name, tier string, admin bool) (api.Account, error) {
	if !validName.MatchString(name) {
		return api.Account{}, errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("account name %q: use 1-63 letters, digits, '.', '_' or '-'", name))
	}
	if tier != api.TierFree && tier != api.TierPaid {
		return api.Account{}, errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("tier %q: use free or paid", tier))
	}
	a := store.Account{ID: "acc-" + random(10), Name: name, Tier: tier, Admin: admin, CreatedAt: time.Now().UTC()}
	keyID, secret := random(5), random(20)
	err := s.store.CreateAccount(ctx, a, store.APIKey{ID: keyID, AccountID: a.ID, Hash: hash(secret), CreatedAt: a.CreatedAt})
	if errors.Is(err, errdefs.ErrAlreadyExists) {
		return api.Account{}, errdefs.New(errdefs.ErrAlreadyExists, fmt.Sprintf("an account named %q already exists", name))
	}
	if err != nil {
		return api.Account{}, err
	}
	out := ToAPI(a)
	out.APIKey = "chaser_" + keyID + "_" + secret
	return out, nil
}

// CreateBy creates an account on behalf of caller, who must be an admin
// (ErrPermissionDenied otherwise). New accounts are never admins.
func (s *Service) CreateBy(ctx context.Context, caller store.Account, name, tier string) (api.Account, error) {
	if !caller.Admin {
		return api.Account{}, errdefs.New(errdefs.ErrPermissionDenied, "only an admin account can create accounts")
	}
	return s.Create(ctx, name, tier, false)
}

// ListBy returns every account, oldest first, for caller, who must be an
// admin (ErrPermissionDenied otherwise).
func (s *Service) ListBy(ctx context.Context, caller store.Account) ([]api.Account, error) {
	if !caller.Admin {
		return nil, errdefs.New(errdefs.ErrPermissionDenied, "only an admin account can list accounts")
	}
	list, err := s.store.ListAccounts(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]api.Account, 0, len(list))
	for _, a := range list {
		out = append(out, ToAPI(a))
	}
	return out, nil
}

// DeletableBy returns account id for caller to delete: ErrPermissionDenied
// unless caller is an admin, ErrNotFound for an unknown account,
// ErrFailedPrecondition for the caller's own account (the server would be
// left without its admin).
func (s *Service) DeletableBy(ctx context.Context, caller store.Account, id string) (store.Account, error) {
	if !caller.Admin {
		return store.Account{}, errdefs.New(errdefs.ErrPermissionDenied, "only an admin account can delete accounts")
	}
	if id == caller.ID {
		return store.Account{}, errdefs.New(errdefs.ErrFailedPrecondition, "an admin cannot delete its own account")
	}
	list, err := s.store.ListAccounts(ctx)
	if err != nil {
		return store.Account{}, err
	}
	for _, a := range list {
		if a.ID == id {
			return a, nil
		}
	}
	return store.Account{}, errdefs.New(errdefs.ErrNotFound, fmt.Sprintf("account %q not found", id))
}

// ToAPI converts a stored account to its wire form.
func ToAPI(a store.Account) api.Account {
	return api.Account{ID: a.ID, Name: a.Name, Tier: a.Tier, Admin: a.Admin, CreatedAt: a.CreatedAt}
}

// Authenticate returns the account of an API key, or ErrUnauthenticated.
func (s *Service) Authenticate(ctx context.Context, key string) (store.Account, error) {
	bad := errdefs.New(errdefs.ErrUnauthenticated, "invalid API key")
	rest, ok := strings.CutPrefix(key, "chaser_")
	if !ok {
		return store.Account{}, bad
	}
	id, secret, ok := strings.Cut(rest, "_")
	if !ok || id == "" || secret == "" {
		return store.Account{}, bad
	}
	h := hash(secret)
	now := time.Now()
	s.mu.Lock()
	c, ok := s.keys[id]
	s.mu.Unlock()
	if ok && now.Before(c.expires) && subtle.ConstantTimeCompare([]byte(c.hash), []byte(h)) == 1 {
		return c.acct, nil
	}
	k, a, err := s.store.KeyByID(ctx, id)
	if errors.Is(err, errdefs.ErrNotFound) {
		return store.Account{}, bad
	}
	if err != nil {
		return store.Account{}, err
	}
	if subtle.ConstantTimeCompare([]byte(k.Hash), []byte(h)) != 1 {
		return store.Account{}, bad
	}
	s.mu.Lock()
	if len(s.keys) >= keyCacheMax {
		clear(s.keys)
	}
	s.keys[id] = cachedKey{hash: k.Hash, acct: a, expires: now.Add(KeyCacheTTL)}
	s.mu.Unlock()
	return a, nil
}

// Bootstrap creates the admin account (tier paid) when no account exists
// yet and writes its key to keyPath with mode 0600. It reports whether it
// created one.
func (s *Service) Bootstrap(ctx context.Context, keyPath string) (bool, error) {
	list, err := s.store.ListAccounts(ctx)
	if err != nil {
		return false, err
	}
	if len(list) > 0 {
		return false, nil
	}
	a, err := s.Create(ctx, "admin", api.TierPaid, true)
	if err != nil {
		return false, err
	}
	tmp := keyPath + ".tmp"
	if err := os.MkdirAll(filepath.Dir(keyPath), 0o700); err != nil {
		return false, err
	}
	if err := os.WriteFile(tmp, []byte(a.APIKey+"\n"), 0o600); err != nil {
		return false, err
	}
	return true, os.Rename(tmp, keyPath)
}
