package account

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chaserhq/chaser/internal/errdefs"
	"github.com/chaserhq/chaser/internal/store"
	"github.com/chaserhq/chaser/internal/store/sqlite"
)

func TestKeys(t *testing.T) {
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s := New(st)
	a, err := s.Create(t.Context(), "alice", "free", false)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Authenticate(t.Context(), a.APIKey)
	if err != nil || got.ID != a.ID {
		t.Fatalf("Authenticate(valid) = %+v, %v", got, err)
	}
	id, _, _ := strings.Cut(strings.TrimPrefix(a.APIKey, "chaser_"), "_")
	for _, key := range []string{"", "x", "chaser_", "chaser_" + id, "chaser_" + id + "_wrong", a.APIKey + "x", "chaser_nope_" + strings.Repeat("a", 32)} {
		if _, err := s.Authenticate(t.Context(), key); !errors.Is(err, errdefs.ErrUnauthenticated) {
			t.Errorf("Authenticate(%q) = %v, want ErrUnauthenticated", key, err)
		}
	}
	if _, err := s.Create(t.Context(), "alice", "paid", false); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Errorf("duplicate: %v", err)
	}
	for _, c := range []struct{ name, tier string }{{"", "free"}, {"a b", "free"}, {"../x", "free"}, {"ok", "gold"}} {
		if _, err := s.Create(t.Context(), c.name, c.tier, false); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("Create(%q, %q) = %v, want ErrInvalidArgument", c.name, c.tier, err)
		}
	}
	// The secret is not stored anywhere in the database file.
	_, secret, _ := strings.Cut(strings.TrimPrefix(a.APIKey, "chaser_"), "_")
	st.Close()
	raw, _ := os.ReadFile(filepath.Join(filepath.Dir(st.Path()), "db"))
	if strings.Contains(string(raw), secret) {
		t.Fatal("the key's secret is stored in clear")
	}
}

func TestBootstrap(t *testing.T) {
	dir := t.TempDir()
	st, err := sqlite.Open(t.Context(), filepath.Join(dir, "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s := New(st)
	keyPath := filepath.Join(dir, "admin.key")
	made, err := s.Bootstrap(t.Context(), keyPath)
	if err != nil || !made {
		t.Fatalf("first Bootstrap = %v, %v", made, err)
	}
	fi, err := os.Stat(keyPath)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin.key: %v %v", fi, err)
	}
	key, _ := os.ReadFile(keyPath)
	a, err := s.Authenticate(t.Context(), strings.TrimSpace(string(key)))
	if err != nil || !a.Admin || a.Tier != "paid" {
		t.Fatalf("admin = %+v, %v", a, err)
	}
	if made, err := s.Bootstrap(t.Context(), keyPath); err != nil || made {
		t.Fatalf("second Bootstrap = %v, %v", made, err)
	}
}

// countingStore counts the key reads that reach the store.
type countingStore struct {
	store.Store
	reads int
}

func (c *countingStore) KeyByID(ctx context.Context, id string) (store.APIKey, store.Account, error) {
	c.reads++
	return c.Store.KeyByID(ctx, id)
}

// TestAuthenticateRemembers: a key used again within KeyCacheTTL costs no
// store read, a wrong secret for a remembered key id is still refused, and
// Forget makes the next use read the store again.
func TestAuthenticateRemembers(t *testing.T) {
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cs := &countingStore{Store: st}
	s := New(cs)
	a, err := s.Create(t.Context(), "alice", "free", false)
	if err != nil {
		t.Fatal(err)
	}
	for range 100 {
		if got, err := s.Authenticate(t.Context(), a.APIKey); err != nil || got.ID != a.ID {
			t.Fatalf("Authenticate = %+v, %v", got, err)
		}
	}
	if cs.reads != 1 {
		t.Errorf("100 authentications read the store %d times, want 1", cs.reads)
	}
	id, _, _ := strings.Cut(strings.TrimPrefix(a.APIKey, "chaser_"), "_")
	if _, err := s.Authenticate(t.Context(), "chaser_"+id+"_"+strings.Repeat("a", 32)); !errors.Is(err, errdefs.ErrUnauthenticated) {
		t.Errorf("wrong secret of a remembered key: %v", err)
	}
	s.Forget(id)
	before := cs.reads
	if _, err := s.Authenticate(t.Context(), a.APIKey); err != nil || cs.reads != before+1 {
		t.Errorf("after Forget: %v, %d store reads, want 1", err, cs.reads-before)
	}
}
