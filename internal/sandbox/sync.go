package sandbox

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/chaserhq/chaser/api"
	"github.com/chaserhq/chaser/internal/agent/fs"
	"github.com/chaserhq/chaser/internal/errdefs"
	"github.com/chaserhq/chaser/internal/httpjson"
	"github.com/chaserhq/chaser/internal/store"
)

// Sync operations used by `chaser dev`: the agent walks, extracts and
// prunes inside the sandbox (package agent/fs resolves every entry beneath
// the root); this service checks whose session it is and enforces the
// operator's per-file limit on the archive stream itself: it re-encodes
// the stream on its way to the agent, leaving out (and reporting) the
// files over the limit, and passes the limit to the agent, which checks
// it again.

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
	limit := s.MaxFileSize()
	pr, pw := io.Pipe()
	skipped := make(chan []api.SyncError, 1)
	go func() { skipped <- filterArchive(body, pw, limit) }()
	res, err := c.Extract(ctx, root, limit, pr)
	pr.CloseWithError(errors.New("extraction ended")) // stops the filter if the agent gave up
	res.Errors = append(<-skipped, res.Errors...)
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

// filterArchive copies the tar stream r to w entry by entry, leaving out
// regular files over limit bytes (their data is read and dropped), and
// returns those as per-entry errors. A malformed stream closes w with an
// ErrInvalidArgument, which ends the extraction.
func filterArchive(r io.Reader, w *io.PipeWriter, limit int64) []api.SyncError {
	skipped := []api.SyncError{}
	tr := tar.NewReader(r)
	tw := tar.NewWriter(w)
	buf := make([]byte, 64<<10)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			w.CloseWithError(tw.Close())
			return skipped
		}
		if err != nil {
			w.CloseWithError(errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("archive malformed or cut: %v", err)))
			return skipped
		}
		if hdr.Typeflag == tar.TypeReg && hdr.Size > limit {
			skipped = append(skipped, api.SyncError{Path: hdr.Name, Code: "too_large", Message: fmt.Sprintf("%s: %s", hdr.Name, httpjson.Message(fs.TooLarge(limit)))})
			continue
		}
		if err := tw.WriteHeader(hdr); err != nil {
			w.CloseWithError(err)
			return skipped
		}
		if _, err := io.CopyBuffer(tw, tr, buf); err != nil {
			if !errors.Is(err, io.ErrClosedPipe) {
				err = errdefs.New(errdefs.ErrInvalidArgument, fmt.Sprintf("archive cut in the middle of %s: %v", hdr.Name, err))
			}
			w.CloseWithError(err)
			return skipped
		}
	}
}
