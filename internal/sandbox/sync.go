package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/agent/fs"
	"github.com/chaserhq/chaser/internal/errdefs"
	"github.com/chaserhq/chaser/internal/store"
)

// Sync operations used by `chaser dev`: the agent walks, extracts and
// prunes inside the sandbox (package agent/fs resolves every entry beneath
// the root); this service checks whose session it is and passes the
// operator's per-file limit, which the agent applies to every archive
// entry (an entry over it is skipped and reported, the rest goes on).

// Manifest opens the streamed manifest (an api.Manifest JSON object) of
// the tree at root in session id; the caller copies and closes it.
func (s *Service) Manifest(ctx context.Context, acct store.Account, id, root string, hash bool) (io.ReadCloser, error) {
	c, _, err := s.Agent(ctx, acct, id)
	if err != nil {
		return nil, err
	}
	if root, err = fs.Clean(root); err != nil {
		return nil, err
	}
	resp, err := c.Manifest(ctx, root, hash, s.MaxFileSize())
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// HashFiles returns the SHA-256 of the regular files among paths (relative
// to root).
func (s *Service) HashFiles(ctx context.Context, acct store.Account, id, root string, paths []string) (api.Hashes, error) {
	c, _, err := s.Agent(ctx, acct, id)
	if err != nil {
		return api.Hashes{}, err
	}
	if root, err = fs.Clean(root); err != nil {
		return api.Hashes{}, err
	}
	return c.HashFiles(ctx, root, paths)
}

// Extract streams the tar body into root of session id (see fs.Extract).
// Entries over MaxFileSize are reported in the answer's Errors and
// skipped. Errors: ErrNotFound, ErrInvalidArgument for a malformed or
// interrupted stream (the entries before it stay applied).
func (s *Service) Extract(ctx context.Context, acct store.Account, id, root string, body io.Reader) (api.ArchiveResult, error) {
	c, _, err := s.Agent(ctx, acct, id)
	if err != nil {
		return api.ArchiveResult{}, err
	}
	if root, err = fs.Clean(root); err != nil {
		return api.ArchiveResult{}, err
	}
	start := time.Now()
	res, err := c.Extract(ctx, root, s.MaxFileSize(), body)
	if err != nil {
		var e *errdefs.Error
		if !errors.As(err, &e) && !errors.Is(err, errdefs.ErrUnavailable) {
			// The client's body failed: it went away or stalled.
			err = errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("archive into %s interrupted: %v", root, err))
		}
		return api.ArchiveResult{}, err
	}
	s.log.Info("archive extracted", "session_id", id, "path", root, "entries", len(res.Written), "errors", len(res.Errors), "bytes", res.Bytes, "ms", time.Since(start).Milliseconds())
	return res, nil
}

// Prune removes paths (relative to root) of session id.
func (s *Service) Prune(ctx context.Context, acct store.Account, id, root string, paths []string) (api.PruneResult, error) {
	c, _, err := s.Agent(ctx, acct, id)
	if err != nil {
		return api.PruneResult{}, err
	}
	if root, err = fs.Clean(root); err != nil {
		return api.PruneResult{}, err
	}
	return c.Prune(ctx, root, paths)
}
