package daemon

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/chaserhq/chaser/internal/errdefs"
)

func TestAllowRegistriesFromEnvironment(t *testing.T) {
	t.Setenv("CHASER_ALLOW_REGISTRIES", "127.0.0.1:5000, registry.lan")
	cfg := Defaults()
	if want := []string{"127.0.0.1:5000", "registry.lan"}; !slices.Equal(cfg.AllowRegistries, want) {
		t.Fatalf("AllowRegistries %q, want %q", cfg.AllowRegistries, want)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	cfg.AllowRegistries = append(cfg.AllowRegistries, "https://registry.lan/v2")
	err := cfg.Validate()
	if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "--allow-registry") {
		t.Fatalf("a malformed --allow-registry: %v", err)
	}
}
