package daemon

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/chaserhq/chaser/internal/errdefs"
	"github.com/chaserhq/chaser/internal/userns"
)

// validateRemap parses --userns-remap and refuses it with runsc as a
// runtime named by flag or environment (a tier's runtime from the config
// file is refused when the runtime is set up).
func (c *Config) validateRemap() error {
	m, err := userns.Parse(c.UsernsRemap)
	if err != nil {
		return err
	}
	c.remap = m
	if !m.Enabled() {
		return nil
	}
	uses := c.Runtime == "runsc"
	for _, r := range c.TierRuntimes {
		uses = uses || r == "runsc"
	}
	if uses {
		return errdefs.New(errdefs.ErrInvalidArgument, "--userns-remap applies to runc sandboxes only; runsc (gVisor) puts its own kernel between sandbox root and the host: run runsc tiers in a server without --userns-remap")
	}
	return nil
}

// openDataDir prepares data directory dir for the remap m: runc's init,
// inside the sandbox's user namespace, enters it on its way to the
// sandboxes' state (userns.OpenDir: group m.Base, mode 0710), so what must
// stay the host's in it must not be readable by others: the store (SQLite
// makes its journal files with the database's mode) becomes 0600; the keys
// are 0600 already. Off, nothing changes.
func openDataDir(dir string, m userns.Remap) error {
	if !m.Enabled() {
		return nil
	}
	db := filepath.Join(dir, "chaser.db")
	f, err := os.OpenFile(db, os.O_CREATE|os.O_RDONLY, 0o600)
	if err != nil {
		return err
	}
	f.Close()
	for _, p := range []string{db, db + "-wal", db + "-shm", db + "-journal"} {
		if err := os.Chmod(p, 0o600); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	if err := userns.OpenDir(dir, m); err != nil {
		return fmt.Errorf("--userns-remap: open %s to the range: %w", dir, err)
	}
	return nil
}
