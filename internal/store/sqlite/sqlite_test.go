package sqlite

import (
	"path/filepath"
	"testing"

	"github.com/chaserhq/chaser/internal/store"
	"github.com/chaserhq/chaser/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := Open(t.Context(), filepath.Join(t.TempDir(), "chaser.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// TestReopen checks that data and the schema version survive a reopen and
// that migrations are not applied twice.
func TestReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chaser.db")
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateAccount(t.Context(), store.Account{ID: "a", Name: "a", Tier: "free"}, store.APIKey{ID: "k", Hash: "h"}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, _, err := s.KeyByID(t.Context(), "k"); err != nil {
		t.Fatal(err)
	}
}
