package sandbox

import (
	"github.com/chaserhq/chaser/internal/errdefs"
)

// errNotAdmin is the answer to an account asking for every account's
// resources.
func errNotAdmin(what string) error {
	return errdefs.New(errdefs.ErrPermissionDenied, "all=true lists every account's "+what+" and is for the admin only; drop it to list your own")
}
