// Package sqlite is the embedded store: one SQLite file (modernc.org/sqlite,
// no cgo) with numbered schema migrations applied at open.
package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/chaserhq/chaser/internal/errdefs"
	"github.com/chaserhq/chaser/internal/paging"
	"github.com/chaserhq/chaser/internal/store"
)

// migrations are applied in order; never edit one that has shipped, add one.
var migrations = []string{
	`CREATE TABLE accounts (
		id         TEXT PRIMARY KEY,
		name       TEXT NOT NULL UNIQUE,
		tier       TEXT NOT NULL,
		admin      INTEGER NOT NULL DEFAULT 0,
		created_at INTEGER NOT NULL
	);
	CREATE TABLE api_keys (
		id         TEXT PRIMARY KEY,
		hash       TEXT NOT NULL,
		account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
		created_at INTEGER NOT NULL
	);
	CREATE TABLE sessions (
		id           TEXT PRIMARY KEY,
		account_id   TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
		type         TEXT NOT NULL,
		status       TEXT NOT NULL,
		image        TEXT NOT NULL,
		runtime      TEXT NOT NULL,
		workspace_id TEXT,
		ephemeral    INTEGER NOT NULL,
		created_at   INTEGER NOT NULL,
		expires_at   INTEGER NOT NULL
	);
	CREATE INDEX sessions_account ON sessions(account_id);`,
	`CREATE TABLE workspaces (
		id           TEXT PRIMARY KEY,
		account_id   TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
		name         TEXT NOT NULL,
		session_type TEXT NOT NULL,
		image        TEXT NOT NULL,
		created_at   INTEGER NOT NULL,
		UNIQUE (account_id, name)
	);
	CREATE TABLE defaults (
		account_id   TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
		session_type TEXT NOT NULL,
		workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
		PRIMARY KEY (account_id, session_type)
	);
	CREATE UNIQUE INDEX sessions_one_per_workspace ON sessions(workspace_id) WHERE workspace_id IS NOT NULL;`,
	`CREATE TABLE public_ports (
		session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
		port       INTEGER NOT NULL,
		PRIMARY KEY (session_id, port)
	);`,
	// Ended sessions keep their record, with why they ended; only live
	// ones hold their workspace.
	`ALTER TABLE sessions ADD COLUMN reason TEXT NOT NULL DEFAULT '';
	ALTER TABLE sessions ADD COLUMN ended_at INTEGER;
	DROP INDEX sessions_one_per_workspace;
	CREATE UNIQUE INDEX sessions_one_per_workspace ON sessions(workspace_id) WHERE workspace_id IS NOT NULL AND ended_at IS NULL;`,
	// Per-session resources; a workspace keeps those it was created with
	// (0: not asked for, the tier's default).
	`ALTER TABLE sessions ADD COLUMN cpu_millis INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE sessions ADD COLUMN memory_mb INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE sessions ADD COLUMN disk_mb INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE sessions ADD COLUMN pids INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE workspaces ADD COLUMN cpu_millis INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE workspaces ADD COLUMN memory_mb INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE workspaces ADD COLUMN disk_mb INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE workspaces ADD COLUMN pids INTEGER NOT NULL DEFAULT 0;`,
	// What the E2B-compatible API keeps of the sandboxes made through it
	// (JSON, read only by internal/e2b).
	`ALTER TABLE sessions ADD COLUMN e2b TEXT NOT NULL DEFAULT '';`,
	// Per-session network policy (JSON of store.Network; '' is mode none,
	// what sessions made before had); a workspace keeps the one asked for
	// at creation ('' there: the tier's).
	`ALTER TABLE sessions ADD COLUMN network TEXT NOT NULL DEFAULT '';
	ALTER TABLE workspaces ADD COLUMN network TEXT NOT NULL DEFAULT '';`,
	// The runtime's id of a session's sandbox when it differs from the
	// session's (a sandbox of the warm pool); '' means the session's id.
	`ALTER TABLE sessions ADD COLUMN sandbox_id TEXT NOT NULL DEFAULT '';`,
}

// Store is a store.Store backed by a SQLite file.
type Store struct {
	db   *sql.DB
	path string
}

// Path returns the database file's path.
func (s *Store) Path() string { return s.path }

var _ store.Store = (*Store)(nil)

// Open opens (creating if needed) the database at path and migrates it.
func Open(ctx context.Context, path string) (*Store, error) {
	dsn := "file:" + path + "?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	// One writer at a time is SQLite's model; a single connection also
	// keeps the pragmas above in force.
	db.SetMaxOpenConns(1)
	s := &Store{db: db, path: path}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("migrate store %s: %w", path, err)
	}
	return s, nil
}

func (s *Store) migrate(ctx context.Context) error {
	if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY)`); err != nil {
		return err
	}
	var have int
	if err := s.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&have); err != nil {
		return err
	}
	if have > len(migrations) {
		return fmt.Errorf("database schema version %d is newer than this binary knows (%d)", have, len(migrations))
	}
	for v := have + 1; v <= len(migrations); v++ {
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, migrations[v-1]); err != nil {
			tx.Rollback()
			return fmt.Errorf("migration %d: %w", v, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations(version) VALUES (?)`, v); err != nil {
			tx.Rollback()
			return err
		}
		if err := tx.Commit(); err != nil {
			return err
		}
	}
	return nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// queryAll runs a query and scans every row with scan; it returns an empty,
// non-nil slice when there is no row.
func queryAll[T any](ctx context.Context, db *sql.DB, scan func(interface{ Scan(...any) error }) (T, error), q string, args ...any) ([]T, error) {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		x, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, x)
	}
	return out, rows.Err()
}

// ownedBy adds "WHERE account_id = ?" to q unless accountID is empty (all).
func ownedBy(q, accountID string) (string, []any) {
	if accountID == "" {
		return q, nil
	}
	return q + ` WHERE account_id = ?`, []any{accountID}
}

func isUnique(err error) bool {
	return err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed")
}

// CreateAccount implements store.Store.
func (s *Store) CreateAccount(ctx context.Context, a store.Account, key store.APIKey) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `INSERT INTO accounts(id, name, tier, admin, created_at) VALUES (?,?,?,?,?)`,
		a.ID, a.Name, a.Tier, a.Admin, a.CreatedAt.UnixNano()); err != nil {
		if isUnique(err) {
			return fmt.Errorf("account %q: %w", a.Name, errdefs.ErrAlreadyExists)
		}
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO api_keys(id, hash, account_id, created_at) VALUES (?,?,?,?)`,
		key.ID, key.Hash, a.ID, a.CreatedAt.UnixNano()); err != nil {
		if isUnique(err) {
			return fmt.Errorf("api key %s: %w", key.ID, errdefs.ErrAlreadyExists)
		}
		return err
	}
	return tx.Commit()
}

const accountCols = `a.id, a.name, a.tier, a.admin, a.created_at`

func scanAccount(row interface{ Scan(...any) error }) (store.Account, error) {
	var a store.Account
	var created int64
	err := row.Scan(&a.ID, &a.Name, &a.Tier, &a.Admin, &created)
	a.CreatedAt = time.Unix(0, created).UTC()
	return a, err
}

// KeyByID implements store.Store.
func (s *Store) KeyByID(ctx context.Context, keyID string) (store.APIKey, store.Account, error) {
	var k store.APIKey
	var a store.Account
	var kcreated, acreated int64
	err := s.db.QueryRowContext(ctx,
		`SELECT k.id, k.hash, k.account_id, k.created_at, `+accountCols+` FROM api_keys k JOIN accounts a ON a.id = k.account_id WHERE k.id = ?`, keyID).
		Scan(&k.ID, &k.Hash, &k.AccountID, &kcreated, &a.ID, &a.Name, &a.Tier, &a.Admin, &acreated)
	if errors.Is(err, sql.ErrNoRows) {
		return k, a, fmt.Errorf("api key %s: %w", keyID, errdefs.ErrNotFound)
	}
	k.CreatedAt = time.Unix(0, kcreated).UTC()
	a.CreatedAt = time.Unix(0, acreated).UTC()
	return k, a, err
}

// ListAccounts implements store.Store.
func (s *Store) ListAccounts(ctx context.Context) ([]store.Account, error) {
	return queryAll(ctx, s.db, scanAccount, `SELECT `+accountCols+` FROM accounts a ORDER BY a.created_at, a.id`)
}

// DeleteAccount implements store.Store: in one transaction, so a session
// created meanwhile either blocks it or is not created.
func (s *Store) DeleteAccount(ctx context.Context, id string) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var live int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM sessions WHERE account_id = ? AND ended_at IS NULL`, id).Scan(&live); err != nil {
		return err
	}
	if live > 0 {
		return fmt.Errorf("account %s has %d live sessions: %w", id, live, errdefs.ErrFailedPrecondition)
	}
	// Keys, sessions, workspaces, defaults and public ports go by ON DELETE CASCADE.
	res, err := tx.ExecContext(ctx, `DELETE FROM accounts WHERE id = ?`, id)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("account %s: %w", id, errdefs.ErrNotFound)
	}
	return tx.Commit()
}

const sessionCols = `id, account_id, type, status, image, runtime, workspace_id, ephemeral, created_at, expires_at, reason, ended_at, cpu_millis, memory_mb, disk_mb, pids, e2b, network, sandbox_id`

func scanSession(row interface{ Scan(...any) error }) (store.Session, error) {
	var x store.Session
	var ws sql.NullString
	var created, expires int64
	var ended sql.NullInt64
	err := row.Scan(&x.ID, &x.AccountID, &x.Type, &x.Status, &x.Image, &x.Runtime, &ws, &x.Ephemeral, &created, &expires, &x.Reason, &ended,
		&x.Resources.MilliCPUs, &x.Resources.MemoryMB, &x.Resources.DiskMB, &x.Resources.Pids, &x.E2B, (*networkCol)(&x.Network), &x.SandboxID)
	if ws.Valid {
		x.WorkspaceID = &ws.String
	}
	x.CreatedAt = time.Unix(0, created).UTC()
	x.ExpiresAt = time.Unix(0, expires).UTC()
	if ended.Valid {
		t := time.Unix(0, ended.Int64).UTC()
		x.EndedAt = &t
	}
	return x, err
}

// CreateSession implements store.Store.
func (s *Store) CreateSession(ctx context.Context, x store.Session) error {
	var ended *int64
	if x.EndedAt != nil {
		n := x.EndedAt.UnixNano()
		ended = &n
	}
	_, err := s.db.ExecContext(ctx, `INSERT INTO sessions(`+sessionCols+`) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
		x.ID, x.AccountID, x.Type, x.Status, x.Image, x.Runtime, x.WorkspaceID, x.Ephemeral,
		x.CreatedAt.UnixNano(), x.ExpiresAt.UnixNano(), x.Reason, ended,
		x.Resources.MilliCPUs, x.Resources.MemoryMB, x.Resources.DiskMB, x.Resources.Pids, x.E2B, networkCol(x.Network), x.SandboxID)
	if isUnique(err) {
		return fmt.Errorf("session %s: %w", x.ID, errdefs.ErrAlreadyExists)
	}
	return err
}

// GetSession implements store.Store.
func (s *Store) GetSession(ctx context.Context, id string) (store.Session, error) {
	x, err := scanSession(s.db.QueryRowContext(ctx, `SELECT `+sessionCols+` FROM sessions WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return x, fmt.Errorf("session %s: %w", id, errdefs.ErrNotFound)
	}
	return x, err
}

// ListSessions implements store.Store.
func (s *Store) ListSessions(ctx context.Context, accountID string) ([]store.Session, error) {
	q, args := ownedBy(`SELECT `+sessionCols+` FROM sessions`, accountID)
	if accountID == "" {
		q += ` WHERE ended_at IS NULL`
	} else {
		q += ` AND ended_at IS NULL`
	}
	return queryAll(ctx, s.db, scanSession, q+` ORDER BY created_at, id`, args...)
}

// ListSessionsPage implements store.Store.
func (s *Store) ListSessionsPage(ctx context.Context, accountID string, after paging.Cursor, limit int) ([]store.Session, error) {
	q, args := ownedBy(`SELECT `+sessionCols+` FROM sessions`, accountID)
	if accountID == "" {
		q += ` WHERE ended_at IS NULL`
	} else {
		q += ` AND ended_at IS NULL`
	}
	q, args = keyset(q, args, after, limit)
	return queryAll(ctx, s.db, scanSession, q, args...)
}

// keyset appends to q (which has a WHERE clause) the condition, order and
// limit of a page after the cursor on (created_at, id).
func keyset(q string, args []any, after paging.Cursor, limit int) (string, []any) {
	if !after.IsZero() {
		t := after.Time.UnixNano()
		q += ` AND (created_at > ? OR (created_at = ? AND id > ?))`
		args = append(args, t, t, after.Key)
	}
	return q + ` ORDER BY created_at, id LIMIT ?`, append(args, limit)
}

// updateLive runs an UPDATE of one live session (its WHERE clause ends in
// "id = ? AND ended_at IS NULL", id last): ErrNotFound when there is none.
func (s *Store) updateLive(ctx context.Context, id, q string, args ...any) error {
	res, err := s.db.ExecContext(ctx, q, append(args, id)...)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("session %s: %w", id, errdefs.ErrNotFound)
	}
	return nil
}

// UpdateSessionStatus implements store.Store.
func (s *Store) UpdateSessionStatus(ctx context.Context, id, status string) error {
	return s.updateLive(ctx, id, `UPDATE sessions SET status = ? WHERE id = ? AND ended_at IS NULL`, status)
}

// SetSessionE2B implements store.Store.
func (s *Store) SetSessionE2B(ctx context.Context, id, data string) error {
	return s.updateLive(ctx, id, `UPDATE sessions SET e2b = ? WHERE id = ? AND ended_at IS NULL`, data)
}

// SetSessionExpiry implements store.Store.
func (s *Store) SetSessionExpiry(ctx context.Context, id string, at time.Time) error {
	return s.updateLive(ctx, id, `UPDATE sessions SET expires_at = ? WHERE id = ? AND ended_at IS NULL`, at.UnixNano())
}

// StopSession implements store.Store.
func (s *Store) StopSession(ctx context.Context, id, reason string) error {
	return s.updateLive(ctx, id, `UPDATE sessions SET status = 'stopping', reason = ? WHERE id = ? AND ended_at IS NULL`, reason)
}

// EndSession implements store.Store.
func (s *Store) EndSession(ctx context.Context, id, status, reason string, at time.Time) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `UPDATE sessions SET status = ?, reason = CASE WHEN ? = '' THEN reason ELSE ? END, ended_at = ?
		WHERE id = ? AND ended_at IS NULL`, status, reason, reason, at.UnixNano(), id)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("session %s: %w", id, errdefs.ErrNotFound)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM public_ports WHERE session_id = ?`, id); err != nil {
		return err
	}
	return tx.Commit()
}

// PruneSessions implements store.Store.
func (s *Store) PruneSessions(ctx context.Context, endedBefore time.Time) (int, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM sessions WHERE ended_at IS NOT NULL AND ended_at < ?`, endedBefore.UnixNano())
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// DeleteSession implements store.Store.
func (s *Store) DeleteSession(ctx context.Context, id string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM sessions WHERE id = ?`, id)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("session %s: %w", id, errdefs.ErrNotFound)
	}
	return nil
}

const workspaceCols = `id, account_id, name, session_type, image, created_at, cpu_millis, memory_mb, disk_mb, pids, network`

func scanWorkspace(row interface{ Scan(...any) error }) (store.Workspace, error) {
	var w store.Workspace
	var created int64
	err := row.Scan(&w.ID, &w.AccountID, &w.Name, &w.SessionType, &w.Image, &created,
		&w.Resources.MilliCPUs, &w.Resources.MemoryMB, &w.Resources.DiskMB, &w.Resources.Pids, (*networkCol)(&w.Network))
	w.CreatedAt = time.Unix(0, created).UTC()
	return w, err
}

// CreateWorkspace implements store.Store.
func (s *Store) CreateWorkspace(ctx context.Context, w store.Workspace) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO workspaces(`+workspaceCols+`) VALUES (?,?,?,?,?,?,?,?,?,?,?)`,
		w.ID, w.AccountID, w.Name, w.SessionType, w.Image, w.CreatedAt.UnixNano(),
		w.Resources.MilliCPUs, w.Resources.MemoryMB, w.Resources.DiskMB, w.Resources.Pids, networkCol(w.Network))
	if isUnique(err) {
		return fmt.Errorf("workspace %q: %w", w.Name, errdefs.ErrAlreadyExists)
	}
	return err
}

func (s *Store) getWorkspace(ctx context.Context, what, where string, args ...any) (store.Workspace, error) {
	w, err := scanWorkspace(s.db.QueryRowContext(ctx, `SELECT `+workspaceCols+` FROM workspaces WHERE `+where, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return w, fmt.Errorf("workspace %s: %w", what, errdefs.ErrNotFound)
	}
	return w, err
}

// GetWorkspace implements store.Store.
func (s *Store) GetWorkspace(ctx context.Context, accountID, name string) (store.Workspace, error) {
	return s.getWorkspace(ctx, name, `account_id = ? AND name = ?`, accountID, name)
}

// GetWorkspaceByID implements store.Store.
func (s *Store) GetWorkspaceByID(ctx context.Context, id string) (store.Workspace, error) {
	return s.getWorkspace(ctx, id, `id = ?`, id)
}

// ListWorkspaces implements store.Store.
func (s *Store) ListWorkspaces(ctx context.Context, accountID string) ([]store.Workspace, error) {
	q, args := ownedBy(`SELECT `+workspaceCols+` FROM workspaces`, accountID)
	return queryAll(ctx, s.db, scanWorkspace, q+` ORDER BY created_at, id`, args...)
}

// ListWorkspacesPage implements store.Store.
func (s *Store) ListWorkspacesPage(ctx context.Context, accountID string, after paging.Cursor, limit int) ([]store.Workspace, error) {
	q, args := ownedBy(`SELECT `+workspaceCols+` FROM workspaces`, accountID)
	if accountID == "" {
		q += ` WHERE 1`
	}
	q, args = keyset(q, args, after, limit)
	return queryAll(ctx, s.db, scanWorkspace, q, args...)
}

// SetWorkspaceDisk implements store.Store.
func (s *Store) SetWorkspaceDisk(ctx context.Context, id string, diskMB int64) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `UPDATE workspaces SET disk_mb = ? WHERE id = ?`, diskMB, id)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("workspace %s: %w", id, errdefs.ErrNotFound)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE sessions SET disk_mb = ? WHERE workspace_id = ? AND ended_at IS NULL`, diskMB, id); err != nil {
		return err
	}
	return tx.Commit()
}

// DeleteWorkspace implements store.Store.
func (s *Store) DeleteWorkspace(ctx context.Context, id string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM workspaces WHERE id = ?`, id)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("workspace %s: %w", id, errdefs.ErrNotFound)
	}
	return nil
}

// SetDefault implements store.Store.
func (s *Store) SetDefault(ctx context.Context, accountID, sessionType, workspaceID string) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO defaults(account_id, session_type, workspace_id) VALUES (?,?,?)
		ON CONFLICT(account_id, session_type) DO UPDATE SET workspace_id = excluded.workspace_id`,
		accountID, sessionType, workspaceID)
	return err
}

// GetDefault implements store.Store.
func (s *Store) GetDefault(ctx context.Context, accountID, sessionType string) (string, error) {
	var id string
	err := s.db.QueryRowContext(ctx, `SELECT workspace_id FROM defaults WHERE account_id = ? AND session_type = ?`,
		accountID, sessionType).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("default %s workspace: %w", sessionType, errdefs.ErrNotFound)
	}
	return id, err
}

// SetPortPublic implements store.Store.
func (s *Store) SetPortPublic(ctx context.Context, sessionID string, port int, public bool) error {
	var err error
	if public {
		_, err = s.db.ExecContext(ctx, `INSERT OR IGNORE INTO public_ports(session_id, port) VALUES (?, ?)`, sessionID, port)
		if err != nil && strings.Contains(err.Error(), "FOREIGN KEY") {
			return fmt.Errorf("session %s: %w", sessionID, errdefs.ErrNotFound)
		}
	} else {
		_, err = s.db.ExecContext(ctx, `DELETE FROM public_ports WHERE session_id = ? AND port = ?`, sessionID, port)
	}
	return err
}

// PublicPorts implements store.Store.
func (s *Store) PublicPorts(ctx context.Context) (map[string][]int, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT session_id, port FROM public_ports
		WHERE session_id IN (SELECT id FROM sessions WHERE ended_at IS NULL) ORDER BY session_id, port`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string][]int{}
	for rows.Next() {
		var id string
		var port int
		if err := rows.Scan(&id, &port); err != nil {
			return nil, err
		}
		out[id] = append(out[id], port)
	}
	return out, rows.Err()
}

// networkCol stores a store.Network as JSON text; ” is the zero Network.
type networkCol store.Network

// Value implements driver.Valuer.
func (n networkCol) Value() (driver.Value, error) {
	if n.Mode == "" && n.Allow == nil && n.Deny == nil {
		return "", nil
	}
	b, err := json.Marshal(store.Network(n))
	return string(b), err
}

// Scan implements sql.Scanner.
func (n *networkCol) Scan(v any) error {
	var b []byte
	switch v := v.(type) {
	case string:
		b = []byte(v)
	case []byte:
		b = v
	}
	*n = networkCol{}
	if len(b) == 0 {
		return nil
	}
	return json.Unmarshal(b, (*store.Network)(n))
}
