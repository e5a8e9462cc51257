package image

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

// A crash can leave a half-unpacked layer in tmp/ and an unpacked layer
// that the state never named; opening the store removes both and keeps
// recorded layers.
func TestOpenRemovesCrashLeftovers(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"tmp/layer-123/usr", "l/1/etc", "l/2/etc"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	st := `{"next_layer":2,"layers":{"sha256:aa":{"id":"1","digest":"sha256:aa"}},"images":{}}`
	if err := os.WriteFile(filepath.Join(dir, "state.json"), []byte(st), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := NewStore(dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "l/1/etc")); err != nil {
		t.Errorf("recorded layer removed: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "l/2")); !os.IsNotExist(err) {
		t.Errorf("unrecorded layer kept: %v", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(ents) != 0 {
		t.Errorf("tmp not emptied: %v", ents)
	}
	// The recorded but unused layer is garbage.
	n, err := s.GC(t.Context())
	if err != nil || n != 1 {
		t.Errorf("GC removed %d, %v; want 1", n, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "l/1")); !os.IsNotExist(err) {
		t.Errorf("GC kept the unused layer: %v", err)
	}
	// A new layer never takes an old name.
	s.mu.Lock()
	id := s.newLayerIDLocked()
	s.mu.Unlock()
	if id != "3" {
		t.Errorf("next layer id %q, want 3", id)
	}
}
