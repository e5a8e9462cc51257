// Package storetest is the conformance suite every store.Store passes.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/chaserhq/chaser/internal/errdefs"
	"github.com/chaserhq/chaser/internal/paging"
	"github.com/chaserhq/chaser/internal/store"
)

// Run runs the suite against stores made by newStore (a fresh, empty store
// per call).
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("Accounts", func(t *testing.T) { testAccounts(t, newStore(t)) })
	t.Run("Sessions", func(t *testing.T) { testSessions(t, newStore(t)) })
	t.Run("Workspaces", func(t *testing.T) { testWorkspaces(t, newStore(t)) })
	t.Run("PublicPorts", func(t *testing.T) { testPublicPorts(t, newStore(t)) })
	t.Run("EndedSessions", func(t *testing.T) { testEndedSessions(t, newStore(t)) })
	t.Run("Pages", func(t *testing.T) { testPages(t, newStore(t)) })
	t.Run("SessionE2BAndExpiry", func(t *testing.T) { testSessionE2B(t, newStore(t)) })
	t.Run("DeleteAccount", func(t *testing.T) { testDeleteAccount(t, newStore(t)) })
	t.Run("SessionSandboxID", func(t *testing.T) { testSessionSandboxID(t, newStore(t)) })
}

// testPages walks the session and workspace lists page by page, each
// account's and everyone's, where several items share a creation time (the
// id breaks the tie) and ended sessions are left out: the pages together
// are the whole list, in its order, each item once.
func testPages(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Millisecond)
	for _, name := range []string{"a", "b"} {
		if err := s.CreateAccount(ctx, store.Account{ID: "acc-" + name, Name: name, Tier: "paid", CreatedAt: now}, store.APIKey{ID: "k-" + name, Hash: "h"}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 11 {
		acct := []string{"acc-a", "acc-b"}[i%3/2]
		at := now.Add(time.Duration(i/3) * time.Second) // three at a time share a creation time
		id := fmt.Sprintf("x-%02d", 20-i)               // ids against creation order
		if err := s.CreateSession(ctx, store.Session{ID: "s" + id, AccountID: acct, Type: "sandbox", Status: "running", Image: "host",
			Runtime: "runc", CreatedAt: at, ExpiresAt: at.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateWorkspace(ctx, store.Workspace{ID: "w" + id, AccountID: acct, Name: "n" + id, SessionType: "sandbox",
			Image: "host", CreatedAt: at}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.EndSession(ctx, "sx-15", "stopped", "deleted", now); err != nil {
		t.Fatal(err)
	}
	for _, acct := range []string{"acc-a", "acc-b", ""} {
		want, err := s.ListSessions(ctx, acct)
		if err != nil {
			t.Fatal(err)
		}
		got := walk(t, func(after paging.Cursor, limit int) ([]string, paging.Cursor, error) {
			l, err := s.ListSessionsPage(ctx, acct, after, limit)
			if err != nil || len(l) == 0 {
				return nil, paging.Cursor{}, err
			}
			return ids(l, func(x store.Session) string { return x.ID }), paging.Cursor{Time: l[len(l)-1].CreatedAt, Key: l[len(l)-1].ID}, nil
		})
		if fmt.Sprint(got) != fmt.Sprint(ids(want, func(x store.Session) string { return x.ID })) || len(got) == 0 {
			t.Errorf("sessions of %q by pages %v, whole list %v", acct, got, ids(want, func(x store.Session) string { return x.ID }))
		}
		wantWs, err := s.ListWorkspaces(ctx, acct)
		if err != nil {
			t.Fatal(err)
		}
		gotWs := walk(t, func(after paging.Cursor, limit int) ([]string, paging.Cursor, error) {
			l, err := s.ListWorkspacesPage(ctx, acct, after, limit)
			if err != nil || len(l) == 0 {
				return nil, paging.Cursor{}, err
			}
			return ids(l, func(w store.Workspace) string { return w.ID }), paging.Cursor{Time: l[len(l)-1].CreatedAt, Key: l[len(l)-1].ID}, nil
		})
		if fmt.Sprint(gotWs) != fmt.Sprint(ids(wantWs, func(w store.Workspace) string { return w.ID })) || len(gotWs) == 0 {
			t.Errorf("workspaces of %q by pages %v, whole list %v", acct, gotWs, ids(wantWs, func(w store.Workspace) string { return w.ID }))
		}
	}
}

// walk reads pages of 2 until one comes back empty and returns the ids.
func walk(t *testing.T, page func(after paging.Cursor, limit int) ([]string, paging.Cursor, error)) []string {
	t.Helper()
	var all []string
	var after paging.Cursor
	for range 100 {
		ids, next, err := page(after, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(ids) > 2 {
			t.Fatalf("page of %d items, limit 2", len(ids))
		}
		if len(ids) == 0 {
			return all
		}
		all, after = append(all, ids...), next
	}
	t.Fatal("pages never end")
	return nil
}

func ids[T any](l []T, id func(T) string) []string {
	out := make([]string, len(l))
	for i, x := range l {
		out[i] = id(x)
	}
	return out
}

// testEndedSessions checks that an ended session keeps its record and
// reason, leaves lists, frees its workspace and ports, and is pruned.
func testEndedSessions(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Millisecond)
	if err := s.CreateAccount(ctx, store.Account{ID: "acc-a", Name: "a", Tier: "paid", CreatedAt: now}, store.APIKey{ID: "k-a", Hash: "h"}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateWorkspace(ctx, store.Workspace{ID: "ws-1", AccountID: "acc-a", Name: "w", SessionType: "sandbox", Image: "host", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	ws := "ws-1"
	x := store.Session{ID: "s-1", AccountID: "acc-a", Type: "sandbox", Status: "running", Image: "host", Runtime: "runc",
		WorkspaceID: &ws, CreatedAt: now, ExpiresAt: now.Add(time.Hour),
		Resources: store.Resources{MilliCPUs: 1500, MemoryMB: 512, DiskMB: 2048, Pids: 128}}
	if err := s.CreateSession(ctx, x); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetSession(ctx, "s-1"); err != nil || got.Resources != x.Resources {
		t.Fatalf("session resources = %+v, %v; want %+v", got.Resources, err, x.Resources)
	}
	if err := s.SetPortPublic(ctx, "s-1", 8080, true); err != nil {
		t.Fatal(err)
	}
	if err := s.StopSession(ctx, "s-1", "idle"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetSession(ctx, "s-1"); got.Status != "stopping" || got.Reason != "idle" || got.EndedAt != nil {
		t.Fatalf("after StopSession: %+v", got)
	}
	end := now.Add(time.Minute)
	if err := s.EndSession(ctx, "s-1", "stopped", "", end); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetSession(ctx, "s-1")
	if err != nil || got.Status != "stopped" || got.Reason != "idle" || got.EndedAt == nil || !got.EndedAt.Equal(end) {
		t.Fatalf("ended session = %+v, %v", got, err)
	}
	if list, err := s.ListSessions(ctx, ""); err != nil || len(list) != 0 {
		t.Fatalf("ListSessions lists an ended session: %+v %v", list, err)
	}
	if list, err := s.ListSessions(ctx, "acc-a"); err != nil || len(list) != 0 {
		t.Fatalf("ListSessions(acc-a) lists an ended session: %+v %v", list, err)
	}
	if ports, err := s.PublicPorts(ctx); err != nil || len(ports) != 0 {
		t.Fatalf("ports of an ended session: %v %v", ports, err)
	}
	if err := s.EndSession(ctx, "s-1", "failed", "died", end); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("ending twice: %v", err)
	}
	if err := s.UpdateSessionStatus(ctx, "s-1", "running"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("status of an ended session changed: %v", err)
	}
	// The workspace is free for a new session.
	y := x
	y.ID, y.CreatedAt = "s-2", now.Add(time.Second)
	if err := s.CreateSession(ctx, y); err != nil {
		t.Fatalf("new session on the workspace of an ended one: %v", err)
	}
	if err := s.EndSession(ctx, "s-2", "failed", "agent_unresponsive", end.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if n, err := s.PruneSessions(ctx, end.Add(time.Second)); err != nil || n != 1 {
		t.Fatalf("PruneSessions = %d, %v", n, err)
	}
	if _, err := s.GetSession(ctx, "s-1"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("pruned session: %v", err)
	}
	if got, err := s.GetSession(ctx, "s-2"); err != nil || got.Reason != "agent_unresponsive" || got.Status != "failed" {
		t.Fatalf("session ended later = %+v, %v", got, err)
	}
}

func testAccounts(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Millisecond)
	a := store.Account{ID: "acc-1", Name: "alice", Tier: "paid", Admin: true, CreatedAt: now}
	if err := s.CreateAccount(ctx, a, store.APIKey{ID: "k-a", Hash: "hash-a"}); err != nil {
		t.Fatal(err)
	}
	dup := store.Account{ID: "acc-2", Name: "alice", Tier: "free", CreatedAt: now}
	if err := s.CreateAccount(ctx, dup, store.APIKey{ID: "k-b", Hash: "hash-b"}); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Fatalf("duplicate name: got %v, want ErrAlreadyExists", err)
	}
	key, got, err := s.KeyByID(ctx, "k-a")
	if err != nil {
		t.Fatal(err)
	}
	if key.Hash != "hash-a" || key.AccountID != a.ID {
		t.Fatalf("KeyByID key = %+v", key)
	}
	if got.ID != a.ID || got.Name != a.Name || got.Tier != a.Tier || !got.Admin || !got.CreatedAt.Equal(now) {
		t.Fatalf("AccountByKeyHash = %+v, want %+v", got, a)
	}
	if _, _, err := s.KeyByID(ctx, "k-b"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("key of refused account: got %v, want ErrNotFound", err)
	}
	b := store.Account{ID: "acc-3", Name: "bob", Tier: "free", CreatedAt: now.Add(time.Second)}
	if err := s.CreateAccount(ctx, b, store.APIKey{ID: "k-c", Hash: "hash-c"}); err != nil {
		t.Fatal(err)
	}
	all, err := s.ListAccounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || all[0].ID != "acc-1" || all[1].ID != "acc-3" {
		t.Fatalf("ListAccounts = %+v", all)
	}
}

func testSessions(t *testing.T, s store.Store) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	for i, name := range []string{"a", "b"} {
		if err := s.CreateAccount(ctx, store.Account{ID: "acc-" + name, Name: name, Tier: "free", CreatedAt: now}, store.APIKey{ID: "k-" + name, Hash: "h"}); err != nil {
			t.Fatal(i, err)
		}
	}
	ws := "ws-1"
	s1 := store.Session{ID: "s-1", AccountID: "acc-a", Type: "sandbox", Status: "running", Image: "host", Runtime: "runc",
		Ephemeral: true, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	s2 := s1
	s2.ID, s2.AccountID, s2.WorkspaceID, s2.Ephemeral, s2.CreatedAt = "s-2", "acc-b", &ws, false, now.Add(time.Second)
	for _, x := range []store.Session{s1, s2} {
		if err := s.CreateSession(ctx, x); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateSession(ctx, s1); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Fatalf("duplicate session: got %v", err)
	}
	got, err := s.GetSession(ctx, "s-2")
	if err != nil {
		t.Fatal(err)
	}
	if got.WorkspaceID == nil || *got.WorkspaceID != ws || got.Ephemeral || !got.ExpiresAt.Equal(now.Add(time.Hour)) || got.AccountID != "acc-b" {
		t.Fatalf("GetSession = %+v", got)
	}
	mine, err := s.ListSessions(ctx, "acc-a")
	if err != nil || len(mine) != 1 || mine[0].ID != "s-1" || mine[0].WorkspaceID != nil {
		t.Fatalf("ListSessions(acc-a) = %+v, %v", mine, err)
	}
	all, err := s.ListSessions(ctx, "")
	if err != nil || len(all) != 2 {
		t.Fatalf("ListSessions(all) = %+v, %v", all, err)
	}
	if err := s.UpdateSessionStatus(ctx, "s-1", "stopping"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetSession(ctx, "s-1"); got.Status != "stopping" {
		t.Fatalf("status = %q", got.Status)
	}
	if err := s.UpdateSessionStatus(ctx, "nope", "x"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("update missing: %v", err)
	}
	if err := s.DeleteSession(ctx, "s-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetSession(ctx, "s-1"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("get deleted: %v", err)
	}
	if err := s.DeleteSession(ctx, "s-1"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("delete twice: %v", err)
	}
}

func testWorkspaces(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Millisecond)
	for _, name := range []string{"a", "b"} {
		if err := s.CreateAccount(ctx, store.Account{ID: "acc-" + name, Name: name, Tier: "paid", CreatedAt: now}, store.APIKey{ID: "k-" + name, Hash: "h"}); err != nil {
			t.Fatal(err)
		}
	}
	w := store.Workspace{ID: "ws-1", AccountID: "acc-a", Name: "dev", SessionType: "sandbox", Image: "host", CreatedAt: now,
		Resources: store.Resources{MilliCPUs: 500, MemoryMB: 1024}}
	if err := s.CreateWorkspace(ctx, w); err != nil {
		t.Fatal(err)
	}
	dup := w
	dup.ID = "ws-2"
	if err := s.CreateWorkspace(ctx, dup); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Fatalf("duplicate name: %v", err)
	}
	other := w
	other.ID, other.AccountID = "ws-3", "acc-b"
	if err := s.CreateWorkspace(ctx, other); err != nil {
		t.Fatalf("same name, other account: %v", err)
	}
	got, err := s.GetWorkspace(ctx, "acc-a", "dev")
	if err != nil || !reflect.DeepEqual(got, w) {
		t.Fatalf("GetWorkspace = %+v, %v", got, err)
	}
	if _, err := s.GetWorkspace(ctx, "acc-a", "nope"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("missing workspace: %v", err)
	}
	if got, err := s.GetWorkspaceByID(ctx, "ws-3"); err != nil || got.AccountID != "acc-b" {
		t.Fatalf("GetWorkspaceByID = %+v, %v", got, err)
	}
	if l, err := s.ListWorkspaces(ctx, "acc-a"); err != nil || len(l) != 1 {
		t.Fatalf("ListWorkspaces = %+v, %v", l, err)
	}

	// One session per workspace.
	ws := "ws-1"
	sess := store.Session{ID: "s-1", AccountID: "acc-a", Type: "sandbox", Status: "running", Image: "host", Runtime: "runc",
		WorkspaceID: &ws, CreatedAt: now, ExpiresAt: now}
	if err := s.CreateSession(ctx, sess); err != nil {
		t.Fatal(err)
	}
	sess.ID = "s-2"
	if err := s.CreateSession(ctx, sess); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Fatalf("second session on a workspace: %v", err)
	}

	// A grown disk is recorded on the workspace and its live session,
	// the other resources untouched.
	if err := s.SetWorkspaceDisk(ctx, "ws-1", 4096); err != nil {
		t.Fatal(err)
	}
	want := w.Resources
	want.DiskMB = 4096
	if got, err := s.GetWorkspaceByID(ctx, "ws-1"); err != nil || got.Resources != want {
		t.Fatalf("workspace resources after SetWorkspaceDisk = %+v, %v; want %+v", got.Resources, err, want)
	}
	if got, err := s.GetSession(ctx, "s-1"); err != nil || got.Resources.DiskMB != 4096 {
		t.Fatalf("session resources after SetWorkspaceDisk = %+v, %v", got.Resources, err)
	}
	if got, err := s.GetWorkspaceByID(ctx, "ws-3"); err != nil || got.Resources.DiskMB != 0 {
		t.Fatalf("other workspace's resources after SetWorkspaceDisk = %+v, %v", got.Resources, err)
	}
	if err := s.SetWorkspaceDisk(ctx, "ws-nope", 4096); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("SetWorkspaceDisk of a missing workspace: %v", err)
	}

	if _, err := s.GetDefault(ctx, "acc-a", "sandbox"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("GetDefault before set: %v", err)
	}
	if err := s.SetDefault(ctx, "acc-a", "sandbox", "ws-1"); err != nil {
		t.Fatal(err)
	}
	if id, err := s.GetDefault(ctx, "acc-a", "sandbox"); err != nil || id != "ws-1" {
		t.Fatalf("GetDefault = %q, %v", id, err)
	}
	if err := s.DeleteSession(ctx, "s-1"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteWorkspace(ctx, "ws-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetDefault(ctx, "acc-a", "sandbox"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("default survives its workspace: %v", err)
	}
	if err := s.DeleteWorkspace(ctx, "ws-1"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("delete twice: %v", err)
	}
}

func testPublicPorts(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := time.Now().UTC()
	if err := s.CreateAccount(ctx, store.Account{ID: "acc", Name: "a", Tier: "free", CreatedAt: now}, store.APIKey{ID: "k", Hash: "h"}); err != nil {
		t.Fatal(err)
	}
	x := store.Session{ID: "s-1", AccountID: "acc", Type: "sandbox", Status: "running", Image: "host", Runtime: "runc", CreatedAt: now, ExpiresAt: now}
	if err := s.CreateSession(ctx, x); err != nil {
		t.Fatal(err)
	}
	for _, p := range []int{8080, 3000, 8080} {
		if err := s.SetPortPublic(ctx, "s-1", p, true); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetPortPublic(ctx, "s-1", 3000, false); err != nil {
		t.Fatal(err)
	}
	got, err := s.PublicPorts(ctx)
	if err != nil || len(got) != 1 || len(got["s-1"]) != 1 || got["s-1"][0] != 8080 {
		t.Fatalf("PublicPorts = %v, %v", got, err)
	}
	if err := s.SetPortPublic(ctx, "s-nope", 1, true); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("port of a missing session: %v", err)
	}
	if err := s.DeleteSession(ctx, "s-1"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.PublicPorts(ctx); len(got) != 0 {
		t.Fatalf("ports outlive their session: %v", got)
	}
}

// testSessionE2B checks the E2B front end's data and a moved expiry: kept
// with the session, refused for sessions that ended or do not exist.
func testSessionE2B(t *testing.T, s store.Store) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	if err := s.CreateAccount(ctx, store.Account{ID: "acc-a", Name: "a", Tier: "free", CreatedAt: now}, store.APIKey{ID: "k-a", Hash: "h"}); err != nil {
		t.Fatal(err)
	}
	x := store.Session{ID: "s-1", AccountID: "acc-a", Type: "sandbox", Status: "running", Image: "host", Runtime: "runc",
		Ephemeral: true, CreatedAt: now, ExpiresAt: now.Add(time.Hour), E2B: `{"templateID":"base"}`}
	if err := s.CreateSession(ctx, x); err != nil {
		t.Fatal(err)
	}
	if err := s.SetSessionE2B(ctx, "s-1", `{"templateID":"x"}`); err != nil {
		t.Fatal(err)
	}
	if err := s.SetSessionExpiry(ctx, "s-1", now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetSession(ctx, "s-1")
	if err != nil || got.E2B != `{"templateID":"x"}` || !got.ExpiresAt.Equal(now.Add(time.Minute)) {
		t.Fatalf("GetSession = %+v, %v", got, err)
	}
	list, err := s.ListSessions(ctx, "acc-a")
	if err != nil || len(list) != 1 || list[0].E2B != got.E2B {
		t.Fatalf("ListSessions = %+v, %v", list, err)
	}
	if err := s.EndSession(ctx, "s-1", "stopped", "deleted", now); err != nil {
		t.Fatal(err)
	}
	for _, err := range []error{s.SetSessionE2B(ctx, "s-1", "{}"), s.SetSessionExpiry(ctx, "s-1", now), s.SetSessionE2B(ctx, "nope", "{}")} {
		if !errors.Is(err, errdefs.ErrNotFound) {
			t.Fatalf("update of an ended or unknown session: got %v, want not found", err)
		}
	}
}

// testDeleteAccount: an account with a live session is refused and kept;
// once its sessions ended it goes with its keys, sessions, workspaces and
// defaults, and leaves other accounts alone; an unknown one is not found.
func testDeleteAccount(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Millisecond)
	for _, name := range []string{"a", "b"} {
		if err := s.CreateAccount(ctx, store.Account{ID: "acc-" + name, Name: name, Tier: "paid", CreatedAt: now}, store.APIKey{ID: "k-" + name, AccountID: "acc-" + name, Hash: "h"}); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateWorkspace(ctx, store.Workspace{ID: "ws-" + name, AccountID: "acc-" + name, Name: "w", SessionType: "sandbox", Image: "host", CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
		if err := s.SetDefault(ctx, "acc-"+name, "sandbox", "ws-"+name); err != nil {
			t.Fatal(err)
		}
		ws := "ws-" + name
		if err := s.CreateSession(ctx, store.Session{ID: "s-" + name, AccountID: "acc-" + name, Type: "sandbox", Status: "running", Image: "host",
			Runtime: "runc", WorkspaceID: &ws, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteAccount(ctx, "acc-a"); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("DeleteAccount with a live session = %v, want ErrFailedPrecondition", err)
	}
	if _, _, err := s.KeyByID(ctx, "k-a"); err != nil {
		t.Fatalf("the refused account's key: %v", err)
	}
	if err := s.EndSession(ctx, "s-a", "stopped", "deleted", now); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteAccount(ctx, "acc-a"); err != nil {
		t.Fatalf("DeleteAccount: %v", err)
	}
	if _, _, err := s.KeyByID(ctx, "k-a"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("key of a deleted account: %v, want ErrNotFound", err)
	}
	if _, err := s.GetSession(ctx, "s-a"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("session of a deleted account: %v, want ErrNotFound", err)
	}
	if _, err := s.GetWorkspaceByID(ctx, "ws-a"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("workspace of a deleted account: %v, want ErrNotFound", err)
	}
	if _, err := s.GetDefault(ctx, "acc-a", "sandbox"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("default of a deleted account: %v, want ErrNotFound", err)
	}
	all, err := s.ListAccounts(ctx)
	if err != nil || len(all) != 1 || all[0].ID != "acc-b" {
		t.Fatalf("ListAccounts after delete = %+v, %v", all, err)
	}
	if _, err := s.GetSession(ctx, "s-b"); err != nil {
		t.Fatalf("the other account's session: %v", err)
	}
	if err := s.DeleteAccount(ctx, "acc-a"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("DeleteAccount of an unknown account = %v, want ErrNotFound", err)
	}
}

// testSessionSandboxID checks that a session keeps the id of the sandbox
// it claimed from the warm pool, and that one without reports its own.
func testSessionSandboxID(t *testing.T, s store.Store) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	if err := s.CreateAccount(ctx, store.Account{ID: "acc-a", Name: "a", Tier: "free", CreatedAt: now}, store.APIKey{ID: "k-a", Hash: "h"}); err != nil {
		t.Fatal(err)
	}
	for _, x := range []store.Session{
		{ID: "s-1", SandboxID: "p-1"},
		{ID: "s-2"},
	} {
		x.AccountID, x.Type, x.Status, x.Image, x.Runtime, x.Ephemeral, x.CreatedAt, x.ExpiresAt = "acc-a", "sandbox", "running", "host", "runc", true, now, now.Add(time.Hour)
		if err := s.CreateSession(ctx, x); err != nil {
			t.Fatal(err)
		}
	}
	for id, want := range map[string]string{"s-1": "p-1", "s-2": "s-2"} {
		got, err := s.GetSession(ctx, id)
		if err != nil || got.Sandbox() != want {
			t.Fatalf("GetSession(%s) = %+v, %v; want sandbox %s", id, got, err, want)
		}
	}
	list, err := s.ListSessions(ctx, "")
	if err != nil || len(list) != 2 || list[0].SandboxID != "p-1" {
		t.Fatalf("ListSessions = %+v, %v", list, err)
	}
}
