// Package store defines the persistent state of the control plane —
// accounts, API keys and sessions — behind a small interface. The embedded
// SQLite implementation lives in store/sqlite; every implementation passes
// storetest.Run.
package store

import (
	"context"
	"time"
)

// Account owns keys and sessions.
type Account struct {
	ID        string
	Name      string
	Tier      string
	Admin     bool
	CreatedAt time.Time
}

// APIKey is an API key as stored: its public id and the hash of its secret
// part. The secret itself is never stored.
type APIKey struct {
	ID        string
	AccountID string
	Hash      string
	CreatedAt time.Time
}

// Session is the stored record of a sandbox session.
type Session struct {
	ID          string
	AccountID   string
	Type        string
	Status      string
	Image       string
	Runtime     string
	WorkspaceID *string
	Ephemeral   bool
	CreatedAt   time.Time
	ExpiresAt   time.Time
}

// Store persists the control plane's state. Methods return
// errdefs.ErrNotFound for missing records and errdefs.ErrAlreadyExists for
// duplicates.
type Store interface {
	// CreateAccount stores an account and its first API key. Account
	// names are unique.
	CreateAccount(ctx context.Context, a Account, key APIKey) error
	// KeyByID returns an API key and the account that owns it.
	KeyByID(ctx context.Context, keyID string) (APIKey, Account, error)
	// ListAccounts returns every account, oldest first.
	ListAccounts(ctx context.Context) ([]Account, error)

	CreateSession(ctx context.Context, s Session) error
	GetSession(ctx context.Context, id string) (Session, error)
	// ListSessions returns an account's sessions, oldest first; all
	// sessions when accountID is empty.
	ListSessions(ctx context.Context, accountID string) ([]Session, error)
	UpdateSessionStatus(ctx context.Context, id, status string) error
	DeleteSession(ctx context.Context, id string) error

	Close() error
}
