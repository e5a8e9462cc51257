//go:build !unix

package daemon

import "github.com/chaserhq/chaser/internal/errdefs"

func raiseFileLimit() (uint64, error) { return 0, errdefs.ErrNotImplemented }

func fileLimit() uint64 { return 0 }
