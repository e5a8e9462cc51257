package daemon

import (
	"errors"
	"testing"

	"github.com/chaserhq/chaser/internal/errdefs"
)

func TestTierRuntimes(t *testing.T) {
	for _, tc := range []struct {
		env string
		ok  bool
	}{
		{"", true},
		{"free=runsc", true},
		{"free=runsc,paid=runc", true},
		{"gold=runsc", false},
		{"free=kata", false},
		{"free", false},
	} {
		err := validateTierRuntimes(tierRuntimesEnv(tc.env))
		if (err == nil) != tc.ok || err != nil && !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%q: %v", tc.env, err)
		}
	}
}
